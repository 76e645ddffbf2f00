// conformance-dns stands in for the registry.k8s.io/coredns/coredns image of
// the Gateway API conformance suite's base manifests (Deployment "coredns" in
// gateway-conformance-infra, run as `coredns -conf /root/Corefile`). It reads
// the same Corefile and implements what the suite's UDPRoute test needs:
//
//   - server blocks "ZONE[:PORT] ... { ... }", one UDP and one TCP listener per
//     port (default port: -dns.port, 53, as in CoreDNS); a query goes to the
//     block with the longest matching zone on the port it arrived on, none
//     matching is REFUSED (as CoreDNS does);
//   - whoami: answers as CoreDNS's whoami plugin does: NOERROR, authoritative,
//     empty answer, and in the additional section an A/AAAA record of the
//     client address and an SRV "_udp.<qname>"/"_tcp.<qname>" with the
//     client port, TTL 0;
//   - forward: never forwards (no traffic leaves this machine): SERVFAIL, as
//     CoreDNS answers when its upstreams cannot be reached;
//   - log: one line per query on stdout; errors: accepted, no effect; any
//     other plugin: a warning at start, no effect.
//
// Usage: conformance-dns -conf Corefile [-dns.port 53] [-listen ADDR]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// block is one server block of the Corefile for one zone.
type block struct {
	zone    string // FQDN, lower case, "." for the root
	port    string
	plugins []string
}

func main() {
	conf := flag.String("conf", "Corefile", "Corefile to load (as CoreDNS's -conf)")
	defPort := flag.String("dns.port", "53", "port of server blocks that name none (as CoreDNS's -dns.port)")
	listen := flag.String("listen", "", "address to bind (default: all addresses, as CoreDNS)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("conformance-dns: ")

	f, err := os.Open(*conf)
	if err != nil {
		log.Fatal(err)
	}
	blocks, err := parseCorefile(f, *defPort)
	f.Close()
	if err != nil {
		log.Fatalf("%s: %v", *conf, err)
	}
	byPort := map[string][]block{}
	for _, b := range blocks {
		byPort[b.port] = append(byPort[b.port], b)
		for _, p := range b.plugins {
			switch p {
			case "whoami", "forward", "log", "errors":
			default:
				log.Printf("warning: zone %s: plugin %q is not implemented, ignored", b.zone, p)
			}
		}
	}
	ports := make([]string, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Strings(ports)

	errc := make(chan error, 2*len(ports))
	for _, port := range ports {
		h := handler(byPort[port])
		addr := net.JoinHostPort(*listen, port)
		for _, network := range []string{"udp", "tcp"} {
			srv := &dns.Server{Addr: addr, Net: network, Handler: h}
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go func() { errc <- srv.ListenAndServe() }()
			select {
			case <-started:
			case err := <-errc:
				log.Fatalf("listen %s/%s: %v", addr, network, err)
			}
		}
		zones := make([]string, 0, len(byPort[port]))
		for _, b := range byPort[port] {
			zones = append(zones, b.zone)
		}
		fmt.Printf("conformance-dns: serving %s on %s (udp, tcp)\n", strings.Join(zones, " "), addr)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Printf("%v, stopping", s)
	case err := <-errc:
		log.Fatal(err)
	}
}

// parseCorefile reads server blocks: "KEY [KEY...] {" lines, each KEY being
// [dns://]ZONE[:PORT], then one plugin per line (nested "{ }" blocks of a
// plugin are skipped), then "}". Comments start with "#".
func parseCorefile(r io.Reader, defPort string) ([]block, error) {
	var out, cur []block
	depth := 0
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.Index(text, "#"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		opens := strings.Count(text, "{")
		closes := strings.Count(text, "}")
		switch depth {
		case 0:
			if opens != 1 || fields[len(fields)-1] != "{" {
				return nil, fmt.Errorf("line %d: want \"ZONE[:PORT] ... {\", got %q", line, text)
			}
			cur = nil
			for _, key := range fields[:len(fields)-1] {
				b, err := parseKey(key, defPort)
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", line, err)
				}
				cur = append(cur, b)
			}
			if len(cur) == 0 {
				return nil, fmt.Errorf("line %d: server block without a zone", line)
			}
		case 1:
			if fields[0] != "}" {
				for i := range cur {
					cur[i].plugins = append(cur[i].plugins, strings.TrimSuffix(fields[0], "{"))
				}
			}
		}
		depth += opens - closes
		if depth < 0 {
			return nil, fmt.Errorf("line %d: unbalanced \"}\"", line)
		}
		if depth == 0 && closes > 0 {
			out = append(out, cur...)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if depth != 0 {
		return nil, fmt.Errorf("unterminated server block")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no server block")
	}
	return out, nil
}

func parseKey(key, defPort string) (block, error) {
	key = strings.TrimPrefix(key, "dns://")
	zone, port := key, defPort
	if i := strings.LastIndex(key, ":"); i >= 0 {
		zone, port = key[:i], key[i+1:]
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return block{}, fmt.Errorf("bad port in %q", key)
		}
	}
	if zone == "" {
		zone = "."
	}
	return block{zone: dns.Fqdn(strings.ToLower(zone)), port: port}, nil
}

// handler picks, per query, the block with the longest zone that is a suffix
// of the query name.
func handler(blocks []block) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		if len(r.Question) != 1 {
			m.SetRcode(r, dns.RcodeFormatError)
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		qname := strings.ToLower(q.Name)
		var best *block
		for i := range blocks {
			if dns.IsSubDomain(blocks[i].zone, qname) && (best == nil || dns.CountLabel(blocks[i].zone) > dns.CountLabel(best.zone)) {
				best = &blocks[i]
			}
		}
		rcode := dns.RcodeRefused
		if best != nil {
			rcode = serve(best, w, r, m)
		} else {
			m.SetRcode(r, rcode)
		}
		if best != nil && has(best.plugins, "log") {
			fmt.Printf("[INFO] %s - %d \"%s IN %s %s\" %s\n", w.RemoteAddr(), r.Id,
				dns.TypeToString[q.Qtype], q.Name, w.RemoteAddr().Network(), dns.RcodeToString[rcode])
		}
		_ = w.WriteMsg(m)
	}
}

// serve fills m for the query r handled by block b; it returns the rcode.
func serve(b *block, w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) int {
	switch {
	case has(b.plugins, "whoami"):
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		host, port := addrOf(w.RemoteAddr())
		var rr dns.RR
		if ip4 := host.To4(); ip4 != nil {
			rr = &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: q.Qclass}, A: ip4}
		} else {
			rr = &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: q.Qclass}, AAAA: host}
		}
		proto := "udp"
		if w.RemoteAddr().Network() == "tcp" {
			proto = "tcp"
		}
		name := "_" + proto + "." + q.Name
		if q.Name == "." {
			name = "_" + proto + "."
		}
		srv := &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: q.Qclass}, Port: uint16(port), Target: "."}
		m.Extra = []dns.RR{rr, srv}
		return dns.RcodeSuccess
	default: // forward (never done here) or no answering plugin
		m.SetRcode(r, dns.RcodeServerFailure)
		return dns.RcodeServerFailure
	}
}

func addrOf(a net.Addr) (net.IP, int) {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.IP, v.Port
	case *net.TCPAddr:
		return v.IP, v.Port
	}
	return net.IPv4zero, 0
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
