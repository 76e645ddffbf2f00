// Package conformance holds portico's runner for the Gateway API conformance
// suite; the runner is its test binary (see README.md and build.sh).
package conformance
