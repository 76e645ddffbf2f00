package main

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// corefile is the "coredns" ConfigMap of the suite's base/manifests.yaml (v1.5.1).
const corefile = `.:53 {
    forward . 8.8.8.8 9.9.9.9
    log
    errors
}
foo.bar.com:53 {
  whoami
}
`

func TestParseCorefile(t *testing.T) {
	blocks, err := parseCorefile(strings.NewReader(corefile), "53")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want 2: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; b.zone != "." || b.port != "53" || strings.Join(b.plugins, ",") != "forward,log,errors" {
		t.Errorf("block 0: %+v", b)
	}
	if b := blocks[1]; b.zone != "foo.bar.com." || b.port != "53" || strings.Join(b.plugins, ",") != "whoami" {
		t.Errorf("block 1: %+v", b)
	}
	blocks, err = parseCorefile(strings.NewReader("# comment\nexample.org example.net {\n  whoami\n  forward . 1.1.1.1 {\n    max_fails 1\n  }\n}\n"), "1053")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || blocks[1].zone != "example.net." || blocks[1].port != "1053" || strings.Join(blocks[1].plugins, ",") != "whoami,forward" {
		t.Errorf("multi-key block: %+v", blocks)
	}
	for _, bad := range []string{"", "foo {\n whoami\n", "foo:x {\n}\n", "}\n"} {
		if _, err := parseCorefile(strings.NewReader(bad), "53"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// startServer starts the handler for blocks on a loopback UDP port.
func startServer(t *testing.T, blocks []block) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: handler(blocks), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestUDPRouteQuery sends the query of the suite's UDPRoute test
// (tests/udproute-simple.go: A foo.bar.com. with dns.Exchange).
func TestUDPRouteQuery(t *testing.T) {
	blocks, err := parseCorefile(strings.NewReader(corefile), "53")
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, blocks)

	msg := new(dns.Msg)
	msg.SetQuestion("foo.bar.com.", dns.TypeA)
	r, err := dns.Exchange(msg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 0 || len(r.Extra) != 2 {
		t.Fatalf("whoami reply: %v", r)
	}
	a, ok := r.Extra[0].(*dns.A)
	if !ok || !a.A.Equal(net.IPv4(127, 0, 0, 1)) || a.Hdr.Name != "foo.bar.com." {
		t.Errorf("extra[0]: %v", r.Extra[0])
	}
	srv, ok := r.Extra[1].(*dns.SRV)
	if !ok || srv.Hdr.Name != "_udp.foo.bar.com." || srv.Port == 0 || srv.Target != "." {
		t.Errorf("extra[1]: %v", r.Extra[1])
	}

	msg.SetQuestion("www.example.com.", dns.TypeA)
	if r, err = dns.Exchange(msg, addr); err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("forward zone: want SERVFAIL, got %v %v", r, err)
	}

	addr = startServer(t, blocks[1:])
	if r, err = dns.Exchange(msg, addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("no zone: want REFUSED, got %v %v", r, err)
	}
}
