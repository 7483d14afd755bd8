"""The objects behind Envoy's config, from istiod and the Kubernetes API, and the links from Envoy to them.

- `model.py`: one shape per object (Service, Endpoint, Ingress, Pod, Event, IstioConfig, ...), whichever source;
- `inventory.py`: `Inventory`, a call's objects (`facts.objects`): ask for the Ingresses, a Service, its endpoints,
  and get them from the source that can answer, with `gaps` saying what could not be read;
- `links.py`: Envoy route -> VirtualService -> Ingress, cluster -> DestinationRule / Service / McpBridge,
  Ingress -> WasmPlugin;
- `istio.py`: configz, registryz and endpointz in that shape, and Istio's rules (port protocols, which
  DestinationRule applies and its effective policy, which EnvoyFilter patches match a cluster);
- `higress.py`: how Higress names what it generates from Ingresses;
- `kubernetes.py`: the Kubernetes API's JSON in that shape (servers/ops/kubeapi.py reads it).
"""
