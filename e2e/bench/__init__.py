"""`make bench-cluster`: route-change latency, errors, memory and CPU of
portico at scale, on the e2e cluster (real API server, MetalLB, Envoy).

Each case starts a fresh `World` (e2e/harness), creates its Gateways and one
backend, creates a burst of HTTPRoutes (each with its own hostname) through
the API, waits until every route's status is written and every Envoy serves
the burst, then adds routes one at a time and times each from the create
call to the first 200 through the real Envoy, while a background prober
checks that every existing hostname keeps answering 200.

| module | what |
| --- | --- |
| `api` | the API server without kubectl: concurrent creates, a watch of route statuses |
| `objects` | the Gateways, Service and HTTPRoutes a case creates |
| `traffic` | one HTTP request through a Gateway, the wait for a first 200, the background prober |
| `procfs` | resident memory and CPU time of portico and the Envoys |
| `case` | one case, set up, measured and torn down |
| `report` | percentiles, the JSON result, the Markdown table |
"""
