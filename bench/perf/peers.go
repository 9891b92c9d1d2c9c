package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sluice-mesh/sluice/bench/internal/benchproc"
)

// peer is a reverse proxy users would pick instead, configured as a plain
// keep-alive reverse proxy in front of the same backend with one worker
// (sluice runs with --concurrency 1): h1 and h2c are its listeners for
// HTTP/1.1 and prior-knowledge h2c, both proxying HTTP/1.1 upstream.
type peer struct {
	name    string
	bin     string
	h1, h2c string
	proc    *benchproc.Process
}

// peerNames are the peers in the order they are measured; each is the
// Debian package's binary.
var peerNames = []string{"nginx", "haproxy", "caddy"}

// startPeer writes the peer's config and starts it on the proxy CPU.
func (e *env) startPeer(ctx context.Context, name string) (*peer, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s: not installed (make bench installs the Debian packages nginx-light, haproxy and caddy): %w", name, err)
	}
	p := &peer{name: name, bin: bin, h1: addr(freePort("127.0.0.1")), h2c: addr(freePort("127.0.0.1"))}
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	backend := addr(e.backend)
	o := benchproc.Options{Name: name, Bin: bin, CPUs: e.o.proxyCPU}
	switch name {
	case "nginx":
		// One process (no master): the worker is the whole proxy.
		conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  upstream backend { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    listen %[4]s http2;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`, dir, backend, p.h1, p.h2c)
		o.Args = []string{"-c", filepath.Join(dir, "nginx.conf"), "-p", dir}
		err = os.WriteFile(o.Args[1], []byte(conf), 0o644)
	case "haproxy":
		conf := fmt.Sprintf(`global
  nbthread 1
  maxconn 8192
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind %s
  bind %s proto h2
  default_backend backend
backend backend
  http-reuse always
  server backend %s
`, p.h1, p.h2c, backend)
		o.Args = []string{"-db", "-f", filepath.Join(dir, "haproxy.cfg")}
		err = os.WriteFile(o.Args[2], []byte(conf), 0o644)
	case "caddy":
		conf := fmt.Sprintf(`{
  admin off
  auto_https off
  servers {
    protocols h1 h2c
  }
}
http://%s, http://%s {
  reverse_proxy %s
}
`, p.h1, p.h2c, backend)
		o.Args = []string{"run", "--adapter", "caddyfile", "--config", filepath.Join(dir, "Caddyfile")}
		o.Env = []string{"GOMAXPROCS=1", "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
		err = os.WriteFile(o.Args[4], []byte(conf), 0o644)
	default:
		return nil, fmt.Errorf("unknown peer %q", name)
	}
	if err != nil {
		return nil, err
	}
	if p.proc, err = e.start(o); err != nil {
		return nil, err
	}
	return p, p.proc.WaitReady(ctx, "http://"+p.h1+"/debug", 20*time.Second)
}
