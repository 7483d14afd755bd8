"""Lints over the Kubernetes objects behind the gateway's config (Ingresses, Services, EndpointSlices, Pods), read
through the objects layer so each also works, where it can, from istiod's view of them."""
