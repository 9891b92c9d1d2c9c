package httpproxy

import "github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"

// The request's state lives in httpfilter, shared with the filters; these
// names keep the connection manager's code and its users short.
type (
	Flags       = httpfilter.Flags
	RequestInfo = httpfilter.RequestInfo
)

// Response flags (see httpfilter).
const (
	FlagLH    = httpfilter.FlagLH
	FlagUH    = httpfilter.FlagUH
	FlagUT    = httpfilter.FlagUT
	FlagLR    = httpfilter.FlagLR
	FlagUR    = httpfilter.FlagUR
	FlagUF    = httpfilter.FlagUF
	FlagUC    = httpfilter.FlagUC
	FlagUO    = httpfilter.FlagUO
	FlagNR    = httpfilter.FlagNR
	FlagDI    = httpfilter.FlagDI
	FlagFI    = httpfilter.FlagFI
	FlagRL    = httpfilter.FlagRL
	FlagUAEX  = httpfilter.FlagUAEX
	FlagRLSE  = httpfilter.FlagRLSE
	FlagDC    = httpfilter.FlagDC
	FlagURX   = httpfilter.FlagURX
	FlagSI    = httpfilter.FlagSI
	FlagIH    = httpfilter.FlagIH
	FlagDPE   = httpfilter.FlagDPE
	FlagUMSDR = httpfilter.FlagUMSDR
	FlagRFCF  = httpfilter.FlagRFCF
	FlagNFCF  = httpfilter.FlagNFCF
	FlagDT    = httpfilter.FlagDT
	FlagUPE   = httpfilter.FlagUPE
	FlagNC    = httpfilter.FlagNC
	FlagOM    = httpfilter.FlagOM
	FlagDF    = httpfilter.FlagDF
	FlagDO    = httpfilter.FlagDO
	FlagDR    = httpfilter.FlagDR

	NumFlags            = httpfilter.NumFlags
	numFlags            = httpfilter.NumFlags
	ResponseFlagsHeader = httpfilter.ResponseFlagsHeader
)

// FlagName is the short name of flag number i (0-based bit index).
func FlagName(i int) string { return httpfilter.FlagName(i) }
