package upstream

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
)

// Hosts maps names to addresses before the system resolver is asked, like
// /etc/hosts but for this proxy alone (sluice proxy --hosts-file). It lets
// a local mesh stand in servers for external names. It is immutable.
type Hosts struct {
	m map[string]string
}

// LoadHosts reads a file in /etc/hosts format: "IP name [name...]" lines,
// "#" comments.
func LoadHosts(path string) (*Hosts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hosts file: %w", err)
	}
	defer f.Close()
	h := &Hosts{m: map[string]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if net.ParseIP(fields[0]) == nil || len(fields) < 2 {
			return nil, fmt.Errorf("hosts file %s line %d: want \"IP name...\", got %q", path, n, sc.Text())
		}
		for _, name := range fields[1:] {
			h.m[strings.ToLower(name)] = fields[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hosts file %s: %w", path, err)
	}
	return h, nil
}

// Rewrite replaces the host of "host:port" by its mapped address, if any.
func (h *Hosts) Rewrite(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, ok := h.m[strings.ToLower(host)]; ok {
		return net.JoinHostPort(ip, port)
	}
	return addr
}
