package xdsgen

import (
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type structpbStruct = structpb.Struct

func structOf(m map[string]any) (*structpb.Struct, error) { return structpb.NewStruct(m) }

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
