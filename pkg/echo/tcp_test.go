package echo

import (
	"bufio"
	"context"
	"net"
	"testing"
)

func TestTCPEchoPrefixesLines(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := StartTCP(ctx, TCPOptions{Address: "127.0.0.1:0", Prefix: "one"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, line := range []string{"hello", "world"} {
		c.Write([]byte(line + "\n"))
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != "one "+line+"\n" {
			t.Errorf("got %q", got)
		}
	}
	cancel()
	s.Wait()
}
