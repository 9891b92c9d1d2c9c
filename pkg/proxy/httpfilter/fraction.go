package httpfilter

import (
	"math/rand/v2"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Fraction is an Envoy FractionalPercent: Numerator out of Denominator.
type Fraction struct{ Numerator, Denominator uint32 }

// Always is 100%.
var Always = Fraction{1, 1}

// CompileFraction compiles a FractionalPercent; unset is 0%.
func CompileFraction(f *typev3.FractionalPercent) Fraction {
	if f == nil {
		return Fraction{0, 100} // an unset percentage is 0%, as in Envoy
	}
	d := uint32(100)
	switch f.Denominator {
	case typev3.FractionalPercent_TEN_THOUSAND:
		d = 10_000
	case typev3.FractionalPercent_MILLION:
		d = 1_000_000
	}
	return Fraction{min(f.Numerator, d), d}
}

// Sample reports whether a request falls in the fraction, given a
// uniformly random number.
func (f Fraction) Sample(random uint64) bool {
	if f.Numerator == 0 {
		return false
	}
	if f.Numerator >= f.Denominator {
		return true
	}
	return random%uint64(f.Denominator) < uint64(f.Numerator)
}

// Sampled reports whether a request falls in f, drawing a random number
// only when f is neither 0% nor 100%.
func (f Fraction) Sampled() bool {
	switch {
	case f.Numerator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return f.Sample(rand.Uint64())
}
