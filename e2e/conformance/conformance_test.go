// The conformance runner: `go test -c` turns this file into the
// portico-conformance binary (build.sh). It is the suite's own
// conformance.RunConformance with the suite's own flags (-gateway-class,
// -conformance-profiles, -report-output, -organization, -project, -url,
// -version, -contact, -run-test, -skip-tests, -debug, -cleanup-base-resources,
// -allow-crds-mismatch, -usable-address, -unusable-address, ...); the one
// difference is that -conformance-profiles defaults to the three Gateway
// profiles portico claims.
//
// Supported features are never listed here: when none of -supported-features,
// -exempt-features, -all-features and -run-test is given, the suite reads them
// from the GatewayClass status.supportedFeatures (suite.NewConformanceTestSuite,
// shouldInferSupportedFeatures) and records "Inferred" for the report.
package conformance_test

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// defaultProfiles are the profiles run when -conformance-profiles is empty.
// Mesh is out of scope.
var defaultProfiles = []suite.ConformanceProfileName{
	suite.GatewayHTTPConformanceProfileName,
	suite.GatewayGRPCConformanceProfileName,
	suite.GatewayTLSConformanceProfileName,
}

func TestConformance(t *testing.T) {
	opts := conformance.DefaultOptions(t)
	if opts.ConformanceProfiles.Len() == 0 {
		opts.ConformanceProfiles.Insert(defaultProfiles...)
	}
	conformance.RunConformanceWithOptions(t, opts)
}
