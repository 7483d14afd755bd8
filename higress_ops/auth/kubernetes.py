"""`--auth kubernetes`: a bearer token is a Kubernetes identity (a ServiceAccount token, `kubectl create
token`). A TokenReview says who it is; a SubjectAccessReview says whether that identity holds the right
`istioctl proxy-config` needs against the gateway (by default `create pods/portforward` in its namespace).

Verdicts are cached by token hash (allowed 30 s, denied 5 s) and concurrent checks of one token share a
single review, so a burst of calls costs the API server two requests, not hundreds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from higress_ops.auth.base import AuthFailed, AuthUnavailable, Principal, bearer
from higress_ops.auth.cache import VerdictCache, token_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Right:
    """The permission a caller needs: a SubjectAccessReview's resourceAttributes."""

    verb: str = "create"
    resource: str = "pods"
    subresource: str = "portforward"
    namespace: str = "higress-system"
    group: str = ""

    def describe(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {what} in namespace {self.namespace}"


class KubernetesAuth:
    mode = "kubernetes"

    def __init__(self, api_client: client.ApiClient, right: Right, *, allowed_ttl: float = 30.0,
                 denied_ttl: float = 5.0, timeout: float = 5.0) -> None:
        self.right = right
        self.allowed_ttl = allowed_ttl
        self.denied_ttl = denied_ttl
        self.timeout = timeout
        self._authn = client.AuthenticationV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)
        self._cache: VerdictCache[Principal | AuthFailed] = VerdictCache()
        self._pending: dict[str, asyncio.Future[Principal | AuthFailed]] = {}
        self.reviews = 0  # TokenReviews sent, for tests and metrics

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer(authorization)
        key = token_key(token)
        verdict = self._cache.get(key)
        if verdict is None:
            pending = self._pending.get(key)
            if pending is not None:
                verdict = await asyncio.shield(pending)
            else:
                future: asyncio.Future[Principal | AuthFailed] = asyncio.get_running_loop().create_future()
                self._pending[key] = future
                try:
                    verdict = await asyncio.to_thread(self._review, token)
                    self._cache.put(key, verdict, self.allowed_ttl if isinstance(verdict, Principal)
                                    else self.denied_ttl)
                    future.set_result(verdict)
                except BaseException as exc:
                    future.set_exception(exc)
                    future.exception()  # retrieved: waiters get it through shield
                    raise
                finally:
                    del self._pending[key]
        if isinstance(verdict, AuthFailed):
            raise verdict
        return verdict

    def _review(self, token: str) -> Principal | AuthFailed:
        """Blocking: TokenReview, then SubjectAccessReview. Runs in a worker thread."""
        self.reviews += 1
        try:
            review = self._authn.create_token_review(
                client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)), _request_timeout=self.timeout)
        except ApiException as exc:
            raise self._unavailable("TokenReview", exc) from None
        except Exception as exc:
            raise self._unavailable("TokenReview", exc) from None
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return AuthFailed(401, "Unauthorized: the Kubernetes API server did not accept this bearer token",
                              error="invalid_token")
        user = status.user
        username = user.username or ""
        right = self.right
        sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=username, groups=user.groups, uid=user.uid,
            extra={k: list(v) for k, v in (user.extra or {}).items()} or None,
            resource_attributes=client.V1ResourceAttributes(
                verb=right.verb, resource=right.resource, subresource=right.subresource or None,
                namespace=right.namespace, group=right.group)))
        try:
            decision = self._authz.create_subject_access_review(sar, _request_timeout=self.timeout)
        except Exception as exc:
            raise self._unavailable("SubjectAccessReview", exc) from None
        if decision.status is None or not decision.status.allowed:
            return AuthFailed(403, f"Forbidden: {username} may not {right.describe()}, the right this server "
                                   "requires (grant it with a Role and RoleBinding)", error="insufficient_scope")
        return Principal(username, self.mode)

    def _unavailable(self, what: str, exc: Exception) -> AuthUnavailable:
        status = getattr(exc, "status", None)
        logger.warning("%s failed", what, extra={"error": type(exc).__name__, "status": status})
        if status in (401, 403):
            return AuthUnavailable(f"cannot check credentials: this server may not create {what.lower()}s "
                                   "(an RBAC problem on the server's side)")
        return AuthUnavailable("cannot check credentials: the Kubernetes API server is unreachable; retry")

    def resource_metadata(self, resource: str) -> Mapping[str, Any] | None:
        return None

    async def aclose(self) -> None:
        return None
