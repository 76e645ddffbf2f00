package conformance_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/flags"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
)

var inventory = flag.Bool("inventory", false,
	"TestInventory: print every test of the suite (no cluster needed): whether it would run "+
		"with -supported-features plus the Core features of -conformance-profiles, the profiles "+
		"it reports under, its features, and the Gateways its manifests create")

// TestInventory lists the suite's tests without touching a cluster:
//
//	portico-conformance -test.run '^TestInventory$' -inventory \
//	  [-supported-features A,B,...] [-conformance-profiles ...]
//
// "run" is yes when every feature of the test is in -supported-features or is
// a Core feature of a selected profile: what the suite does with the features
// it infers from the GatewayClass (suite.NewConformanceTestSuite, Run).
func TestInventory(t *testing.T) {
	if !*inventory {
		t.Skip("needs -inventory")
	}
	profiles := suite.ParseConformanceProfiles(*flags.ConformanceProfiles)
	if profiles.Len() == 0 {
		profiles.Insert(defaultProfiles...)
	}
	all := map[suite.ConformanceProfileName]suite.ConformanceProfile{
		suite.GatewayHTTPConformanceProfileName: suite.GatewayHTTPConformanceProfile,
		suite.GatewayTLSConformanceProfileName:  suite.GatewayTLSConformanceProfile,
		suite.GatewayGRPCConformanceProfileName: suite.GatewayGRPCConformanceProfile,
		suite.MeshHTTPConformanceProfileName:    suite.MeshHTTPConformanceProfile,
		suite.MeshGRPCConformanceProfileName:    suite.MeshGRPCConformanceProfile,
	}
	supported := suite.ParseSupportedFeatures(*flags.SupportedFeatures)
	if supported == nil {
		supported = suite.FeaturesSet{}
	}
	names := profiles.UnsortedList()
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	for _, n := range names {
		p, ok := all[n]
		if !ok {
			t.Fatalf("unknown profile %q", n)
		}
		supported = supported.Union(p.CoreFeatures)
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TEST\tRUN\tPROFILES\tGATEWAYS\tPROVISIONAL\tFEATURES\tMANIFESTS")
	total, runCount, gwTotal := 0, 0, 0
	for _, test := range tests.ConformanceTests {
		total++
		run := supported.HasAll(test.Features...)
		var in []string
		for _, n := range names {
			p := all[n]
			ok := true
			for _, f := range test.Features {
				if !p.CoreFeatures.Has(f) && !p.ExtendedFeatures.Has(f) {
					ok = false
					break
				}
			}
			if ok {
				in = append(in, string(n))
			}
		}
		gws := 0
		for _, m := range test.Manifests {
			n, err := countKind(m, "Gateway")
			if err != nil {
				t.Fatalf("%s: %s: %v", test.ShortName, m, err)
			}
			gws += n
		}
		if run {
			runCount++
			gwTotal += gws
		}
		fs := make([]string, 0, len(test.Features))
		for _, f := range test.Features {
			if f != features.SupportGateway {
				fs = append(fs, string(f))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%t\t%s\t%s\n", test.ShortName, yesNo(run), orDash(strings.Join(in, ",")),
			gws, test.Provisional, orDash(strings.Join(fs, ",")), orDash(strings.Join(test.Manifests, ",")))
	}
	w.Flush()
	base, _ := countKind("base/manifests.yaml", "Gateway")
	fmt.Printf("\n%d tests, %d would run; Gateways: %d from base/manifests.yaml (kept for the whole run) + %d from the manifests of the tests that would run (each deleted when its test ends)\n",
		total, runCount, base, gwTotal)
}

// countKind counts the objects of a kind in a manifest of the suite's embedded FS.
func countKind(path, kind string) (int, error) {
	raw, err := conformance.Manifests.ReadFile(path)
	if err != nil {
		return 0, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return 0, err
		}
		if u.GetKind() == kind {
			n++
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
