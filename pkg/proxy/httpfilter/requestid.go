package httpfilter

import "math/rand/v2"

const hexDigits = "0123456789abcdef"

// RequestID makes an x-request-id in UUID v4 form (Envoy's UUID request
// id extension).
func RequestID() string {
	var b [36]byte
	a, c := rand.Uint64(), rand.Uint64()
	j := 0
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
			continue
		case 14:
			b[i] = '4'
			continue
		}
		var nib uint64
		if j < 16 {
			nib = (a >> (4 * j)) & 0xf
		} else {
			nib = (c >> (4 * (j - 16))) & 0xf
		}
		if i == 19 {
			nib = 8 | (nib & 3)
		}
		b[i] = hexDigits[nib]
		j++
	}
	return string(b[:])
}
