"""istioctl analyze's checks of a gateway's traffic config, run over what the running gateway and its istiod
hold (istiod's configz, registryz and endpointz, this Envoy's own labels, and the Kubernetes objects when the
server reads them) instead of over manifests. One module per Istio analyzer (istio/istio
pkg/config/analysis/analyzers/...), same conditions, same message codes and texts (codes.py), each finding with
the object to edit and the fix.
"""
