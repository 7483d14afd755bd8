"""Istio's analysis message catalogue (istio/istio pkg/config/analysis/msg/messages.yaml): code -> name, level and
the message template, for the codes the analyzers here report. Templates are Python `str.format` strings with
the same arguments, in the same order, as Istio's Go templates (`%q` becomes a quoted `{!r}`-like field made by
`quote`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from higress_ops.servers.ops.detectors.base import Severity


@dataclass(frozen=True)
class Code:
    code: str
    name: str
    severity: Severity
    template: str

    def text(self, *args: object) -> str:
        return self.template.format(*args)


E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
CODES = {c.code: c for c in (
    Code("IST0101", "ReferencedResourceNotFound", E, "Referenced {} not found: {}"),
    Code("IST0106", "SchemaValidationError", E, "Schema validation error: {}"),
    Code("IST0107", "MisplacedAnnotation", W, "Misplaced annotation: {} can only be applied to {}"),
    Code("IST0108", "UnknownAnnotation", W, "Unknown annotation: {}"),
    Code("IST0109", "ConflictingMeshGatewayVirtualServiceHosts", E,
         "The VirtualServices {} associated with mesh gateway define the same host {} which can lead to undefined "
         "behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."),
    Code("IST0112", "VirtualServiceDestinationPortSelectorRequired", E,
         "This VirtualService routes to a service {} that exposes multiple ports {}. Specifying a port in the "
         "destination is required to disambiguate."),
    Code("IST0118", "PortNameIsNotUnderNamingConvention", INFO,
         "Port name {} (port: {}, targetPort: {}) doesn't follow the naming convention of Istio port."),
    Code("IST0128", "NoServerCertificateVerificationDestinationLevel", W,
         "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set to validate "
         "server identity for host: {}"),
    Code("IST0129", "NoServerCertificateVerificationPortLevel", W,
         "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set to validate "
         "server identity for host: {} at port {}"),
    Code("IST0130", "VirtualServiceUnreachableRule", W, "VirtualService rule {} not used ({})."),
    Code("IST0131", "VirtualServiceIneffectiveMatch", INFO,
         "VirtualService rule {} match {} is not used (duplicate/overlapping match in rule {})."),
    Code("IST0132", "VirtualServiceHostNotFoundInGateway", W,
         "one or more host {} defined in VirtualService {} not found in Gateway {}."),
    Code("IST0134", "ServiceEntryAddressesRequired", W, "ServiceEntry addresses are required for this protocol."),
    Code("IST0135", "DeprecatedAnnotation", INFO,
         "Annotation {} has been deprecated{} and may not work in future Istio versions."),
    Code("IST0138", "GatewayDuplicateCertificate", W,
         "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 connections."),
    Code("IST0140", "IngressRouteRulesNotAffected", W,
         "Subset in virtual service {} has no effect on ingress gateway {} requests"),
    Code("IST0145", "ConflictingGateways", E,
         "Conflict with gateways {} (workload selector {}, port {}, hosts {})."),
    Code("IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", E,
         "The virtual service uses the JWT claim based routing (key: {}) but found no request authentication for "
         "the gateway ({}) pod ({}). The request authentication must first be applied for the gateway pods to "
         "validate the JWT token and make the claims available for routing."),
    Code("IST0150", "ExternalNameServiceTypeInvalidPortName", W,
         "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic "
         "for ports serving TCP protocol from being forwarded correctly"),
    Code("IST0151", "EnvoyFilterUsesRelativeOperation", W,
         "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the "
         "EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in "
         "ensuring the EnvoyFilter is applied correctly."),
    Code("IST0152", "EnvoyFilterUsesReplaceOperationIncorrectly", E,
         "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER."),
    Code("IST0153", "EnvoyFilterUsesAddOperationIncorrectly", E,
         "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."),
    Code("IST0154", "EnvoyFilterUsesRemoveOperationIncorrectly", E,
         "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."),
    Code("IST0155", "EnvoyFilterUsesRelativeOperationWithProxyVersion", W,
         "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, "
         "REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an "
         "upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the "
         "EnvoyFilter is applied correctly."),
    Code("IST0161", "InvalidGatewayCredential", E,
         "The credential referenced by the Gateway {} in namespace {} is invalid, which can cause the traffic not "
         "to work as expected."),
    Code("IST0162", "GatewayPortNotDefinedOnService", W,
         "The gateway is listening on a target port (port {}) that is not defined in the Service associated with "
         "its workload instances (Pod selector {}). If you need to access the gateway port through the gateway "
         "Service, it will not be available."),
    Code("IST0165", "ReferencedInternalGateway", W,
         "Gateway reference in VirtualService {} is to an implementation-generated internal Gateway: {}."),
    Code("IST0171", "NegativeConditionStatus", W,
         "A condition with a negative status is present: type={}, reason={}, message={}."),
    Code("IST0173", "DestinationRuleSubsetNotSelectPods", E,
         "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH "
         "(NoHealthyUpstream)."),
    Code("IST0174", "UnknownDestinationRuleHost", W,
         "The host {} defined in the DestinationRule does not match any services in the mesh."),
    Code("IST0177", "ConflictingServiceEntryProtocol", W,
         "Multiple ServiceEntries ({}) define the same host {} and port {} with conflicting protocols ({})."),
)}
NAMES = {  # every code of messages.yaml, for the codes istiod writes into status that no analyzer here reports
    "IST0001": "InternalError", "IST0002": "Deprecated", "IST0101": "ReferencedResourceNotFound",
    "IST0102": "NamespaceNotInjected", "IST0103": "PodMissingProxy", "IST0106": "SchemaValidationError",
    "IST0107": "MisplacedAnnotation", "IST0108": "UnknownAnnotation",
    "IST0109": "ConflictingMeshGatewayVirtualServiceHosts", "IST0110": "ConflictingSidecarWorkloadSelectors",
    "IST0111": "MultipleSidecarsWithoutWorkloadSelectors",
    "IST0112": "VirtualServiceDestinationPortSelectorRequired", "IST0116": "DeploymentAssociatedToMultipleServices",
    "IST0118": "PortNameIsNotUnderNamingConvention", "IST0123": "NamespaceMultipleInjectionLabels",
    "IST0125": "InvalidAnnotation", "IST0126": "UnknownMeshNetworksServiceRegistry",
    "IST0127": "NoMatchingWorkloadsFound", "IST0128": "NoServerCertificateVerificationDestinationLevel",
    "IST0129": "NoServerCertificateVerificationPortLevel", "IST0130": "VirtualServiceUnreachableRule",
    "IST0131": "VirtualServiceIneffectiveMatch", "IST0132": "VirtualServiceHostNotFoundInGateway",
    "IST0133": "SchemaWarning", "IST0134": "ServiceEntryAddressesRequired", "IST0135": "DeprecatedAnnotation",
    "IST0136": "AlphaAnnotation", "IST0137": "DeploymentConflictingPorts", "IST0138": "GatewayDuplicateCertificate",
    "IST0139": "InvalidWebhook", "IST0140": "IngressRouteRulesNotAffected", "IST0141": "InsufficientPermissions",
    "IST0142": "UnsupportedKubernetesVersion", "IST0143": "LocalhostListener", "IST0144": "InvalidApplicationUID",
    "IST0145": "ConflictingGateways", "IST0146": "ImageAutoWithoutInjectionWarning",
    "IST0147": "ImageAutoWithoutInjectionError", "IST0148": "NamespaceInjectionEnabledByDefault",
    "IST0149": "JwtClaimBasedRoutingWithoutRequestAuthN", "IST0150": "ExternalNameServiceTypeInvalidPortName",
    "IST0151": "EnvoyFilterUsesRelativeOperation", "IST0152": "EnvoyFilterUsesReplaceOperationIncorrectly",
    "IST0153": "EnvoyFilterUsesAddOperationIncorrectly", "IST0154": "EnvoyFilterUsesRemoveOperationIncorrectly",
    "IST0155": "EnvoyFilterUsesRelativeOperationWithProxyVersion", "IST0156": "UnsupportedGatewayAPIVersion",
    "IST0157": "InvalidTelemetryProvider", "IST0158": "PodsIstioProxyImageMismatchInNamespace",
    "IST0159": "ConflictingTelemetryWorkloadSelectors", "IST0160": "MultipleTelemetriesWithoutWorkloadSelectors",
    "IST0161": "InvalidGatewayCredential", "IST0162": "GatewayPortNotDefinedOnService",
    "IST0163": "InvalidExternalControlPlaneConfig", "IST0164": "ExternalControlPlaneAddressIsNotAHostname",
    "IST0165": "ReferencedInternalGateway", "IST0166": "IneffectiveSelector", "IST0167": "IneffectivePolicy",
    "IST0168": "UnknownUpgradeCompatibility", "IST0169": "UpdateIncompatibility",
    "IST0170": "MultiClusterInconsistentService", "IST0171": "NegativeConditionStatus",
    "IST0172": "FutureUnsupportedGatewayAPIVersion", "IST0173": "DestinationRuleSubsetNotSelectPods",
    "IST0174": "UnknownDestinationRuleHost", "IST0175": "JwksUriFetchUnrestricted",
    "IST0176": "GatewayAPICRDVersionBelowMinimum", "IST0177": "ConflictingServiceEntryProtocol"
}
LEVELS = {"ERROR": E, "WARNING": W, "INFO": INFO}  # istio.io/api analysis.v1alpha1 AnalysisMessageBase.Level


def quote(value: str) -> str:
    """Go's %q for the ASCII names these messages carry."""
    return json.dumps(value)


def go_list(values: list[str] | list[int]) -> str:
    """Go's %v of a slice: `[a b c]`."""
    return "[" + " ".join(str(v) for v in values) + "]"
