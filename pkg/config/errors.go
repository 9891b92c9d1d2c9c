package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a problem with one resource. Its message names the file, the
// document, the resource and the field, so a user can go straight to it.
type Error struct {
	Source Source
	Key    Key
	// Field is a path such as "spec.http[0].route[1].weight"; empty when the
	// problem is with the document as a whole.
	Field string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source.String())
	b.WriteString(": ")
	if e.Key.Kind != "" {
		fmt.Fprintf(&b, "%s %s/%s: ", e.Key.Kind, e.Key.Namespace, e.Key.Name)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is a list of resource errors reported together.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// AsErrors flattens err into resource errors where it holds any.
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return nil
}
