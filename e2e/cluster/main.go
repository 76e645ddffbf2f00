// Command portico-cluster is a multi-call binary bundling the pieces of a
// minimal Kubernetes control plane used by portico's end-to-end tests:
//
//	portico-cluster etcd                    [flags]  embedded etcd server
//	portico-cluster kube-apiserver          [flags]  upstream kube-apiserver
//	portico-cluster kube-controller-manager [flags]  upstream kube-controller-manager
//	portico-cluster kube-scheduler          [flags]  upstream kube-scheduler
//	portico-cluster kwok                    [flags]  kwok fake-node controller
//	portico-cluster version
//
// The subcommand is the first argument, or the name the binary was invoked
// under (so symlinks named after a subcommand work too).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type subcommand struct {
	name string
	help string
	run  func(args []string) int
}

var subcommands = []subcommand{
	{"etcd", "embedded etcd server (go.etcd.io/etcd/server/v3/embed)", runEtcd},
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", runAPIServer},
	{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", runControllerManager},
	{"kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", runScheduler},
	{"kwok", "sigs.k8s.io/kwok fake node/pod lifecycle controller", runKwok},
	{"kwok-stages", "print kwok's default node/pod stages (for kwok --config)", runKwokStages},
	{"version", "print bundled component versions", runVersion},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s <subcommand> [flags]\n\nsubcommands:\n", filepath.Base(os.Args[0]))
	for _, s := range subcommands {
		fmt.Fprintf(os.Stderr, "  %-24s %s\n", s.name, s.help)
	}
}

func lookup(name string) *subcommand {
	for i := range subcommands {
		if subcommands[i].name == name {
			return &subcommands[i]
		}
	}
	return nil
}

func main() {
	// Invoked through a symlink named after a subcommand?
	if s := lookup(strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")); s != nil {
		os.Exit(s.run(os.Args[1:]))
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		os.Exit(0)
	}
	s := lookup(os.Args[1])
	if s == nil {
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	// Make the upstream cobra commands see "<subcommand> [flags]" as their
	// own command line: they read os.Args[1:] when no args are set.
	os.Args = append([]string{s.name}, os.Args[2:]...)
	os.Exit(s.run(os.Args[1:]))
}
