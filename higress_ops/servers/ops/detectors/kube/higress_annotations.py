"""The Ingress annotations Higress reads, and under which prefix (alibaba/higress pkg/ingress/kube/annotations,
checked against its source: each parser reads a key with `Parse*ASAP`, which tries `nginx.ingress.kubernetes.io/`
then `higress.io/`, or with `Parse*ForHigress`, `higress.io/` only).

An annotation under either prefix that Higress does not read does nothing; the ones an nginx user most often
expects to work (body size, timeouts, snippets, auth-url, rate limits, ...) are simply not in these lists.
"""

from __future__ import annotations

import re

HIGRESS = "higress.io/"
NGINX = "nginx.ingress.kubernetes.io/"

# Read under both prefixes (nginx-compatible).
BOTH = frozenset({
    "affinity", "app-root", "auth-secret", "auth-tls-secret", "auth-type", "backend-protocol", "canary",
    "canary-by-cookie", "canary-by-header", "canary-by-header-pattern", "canary-by-header-value", "canary-weight",
    "canary-weight-total", "cors-allow-credentials", "cors-allow-headers", "cors-allow-methods", "cors-allow-origin",
    "cors-expose-headers", "cors-max-age", "custom-http-errors", "default-backend", "enable-cors",
    "force-ssl-redirect", "ignore-path-case", "load-balance", "mcp-server", "mcp-server-enable-path-rewrite",
    "mcp-server-match-rule-domains", "mcp-server-match-rule-type", "mcp-server-match-rule-value",
    "mcp-server-path-rewrite-prefix", "mcp-server-upstream-type", "mcp-sse-stateful-param-name", "mirror-percentage",
    "mirror-target-fqdn", "mirror-target-fqdn-port", "mirror-target-service", "permanent-redirect",
    "permanent-redirect-code", "proxy-next-upstream", "proxy-next-upstream-timeout", "proxy-next-upstream-tries",
    "proxy-ssl-name", "proxy-ssl-secret", "proxy-ssl-server-name", "proxy-ssl-verify", "rewrite-target",
    "session-cookie-expires", "session-cookie-max-age", "session-cookie-name", "session-cookie-path", "ssl-cipher",
    "ssl-redirect", "temporal-redirect", "tls-max-protocol-version", "tls-min-protocol-version", "upstream-hash-by",
    "upstream-vhost", "use-regex", "whitelist-source-range",
})
# Read only as higress.io/<name>.
HIGRESS_ONLY = frozenset({
    "destination", "full-path-regex", "match-method", "request-header-control-add", "request-header-control-remove",
    "request-header-control-update", "response-header-control-add", "response-header-control-remove",
    "response-header-control-update", "rewrite-path", "route-limit-burst-multiplier", "route-limit-rpm",
    "route-limit-rps", "rpc-destination-name", "timeout",
})
# higress.io/{exact,regex,prefix}-match-{header,pseudo-header,query}-<name>: a route match (annotations/match.go).
MATCH = re.compile(r"^(exact|regex|prefix)-match-(header|pseudo-header|query)-.+$")
# Set by Higress on the Secrets its certificate manager issues (pkg/cert): not Ingress annotations.
SECRET_ONLY = frozenset({"cert-domain", "cert-notAfter", "cert-notBefore", "cert-renew", "cert-renew-time",
                         "cert-source", "cert-https"})
CANARY_BY = ("canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie", "canary-weight")


def key(annotation: str) -> tuple[str, str] | None:
    """(prefix, name) of an annotation Higress might read, None for other annotations."""
    for prefix in (HIGRESS, NGINX):
        if annotation.startswith(prefix):
            return prefix, annotation[len(prefix):]
    return None


def reads(prefix: str, name: str) -> bool:
    """Whether Higress reads `prefix + name` on an Ingress."""
    if name in BOTH:
        return True
    return prefix == HIGRESS and (name in HIGRESS_ONLY or MATCH.match(name) is not None)
