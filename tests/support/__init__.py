"""Real processes and test doubles the tests start: redis-server, Envoy, the istiod double."""
