"""HTTP routes: api (the versioned JSON API, /v1/...), health (/healthz, /readyz, /metrics), page (/ and its
static files). Each route parses HTTP, calls the FaceService and formats the answer; no model logic here."""
