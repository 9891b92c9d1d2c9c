package httpfilter

import "testing"

func TestFlagsString(t *testing.T) {
	cases := map[Flags]string{
		0:                           "-",
		FlagUF:                      "UF",
		FlagUF | FlagURX:            "UF,URX",
		FlagURX | FlagUT | FlagDI:   "UT,DI,URX",
		FlagNR:                      "NR",
		FlagFI | FlagDI:             "DI,FI",
		FlagUO | FlagNC | FlagDC:    "UO,DC,NC",
		FlagUH | FlagLR | FlagUC:    "UH,LR,UC",
		FlagDR | FlagLH | FlagUMSDR: "LH,UMSDR,DR",
	}
	for f, want := range cases {
		if got := f.String(); got != want {
			t.Errorf("%#x: %q, want %q", uint32(f), got, want)
		}
	}
	if FlagName(numFlags-1) != "DR" || FlagName(0) != "LH" {
		t.Errorf("flag names out of step with the bits")
	}
}
