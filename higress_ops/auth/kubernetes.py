"""`--auth kubernetes`: a bearer token is a Kubernetes identity (a ServiceAccount token, `kubectl create
token`). A TokenReview says who it is; a SubjectAccessReview says whether that identity holds the right
`istioctl proxy-config` needs against the gateway (by default `create pods/portforward` in its namespace).

Verdicts are cached by token hash (allowed 30 s, denied 5 s) and concurrent checks of one token share a
single review, so a burst of calls costs the API server two requests, not hundreds.

Reviews run on their own few threads, never the default pool (upstream DNS and pod listing live there), with
a bound on distinct tokens under review in all and per client address: past it the answer is 503 or 429 with
Retry-After at once, so a flood of junk tokens from one client cannot queue ahead of everyone's login.

With `audiences` (serve --auth-audience) the TokenReview asks for them, so only tokens minted for this server
(`kubectl create token SA --audience higress-ops`) pass, and a token this server sees is no key to the API
server. An API server that answers authenticated without naming one of them is not audience-aware: the token
would be good for the API server itself, so it is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from higress_ops.auth.base import AuthBusy, AuthFailed, AuthUnavailable, Principal, bearer
from higress_ops.auth.cache import VerdictCache, token_key

logger = logging.getLogger(__name__)

REVIEW_THREADS = 4
MAX_REVIEWS = 64  # distinct tokens under review or waiting for a thread, on this replica
MAX_REVIEWS_PER_CLIENT = 4  # of them from one client address


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

    def __init__(self, api_client: client.ApiClient, right: Right, *, audiences: Sequence[str] = (),
                 allowed_ttl: float = 30.0, denied_ttl: float = 5.0, timeout: float = 5.0,
                 threads: int = REVIEW_THREADS, max_reviews: int = MAX_REVIEWS,
                 max_reviews_per_client: int = MAX_REVIEWS_PER_CLIENT) -> None:
        self.right = right
        self.audiences = list(audiences)
        self.max_reviews = max_reviews
        self.max_reviews_per_client = max_reviews_per_client
        self.allowed_ttl = allowed_ttl
        self.denied_ttl = denied_ttl
        self.timeout = timeout
        self._authn = client.AuthenticationV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)
        self._cache: VerdictCache[Principal | AuthFailed] = VerdictCache()
        self._pending: dict[str, asyncio.Future[Principal | AuthFailed]] = {}
        self._per_client: dict[str, int] = {}  # client address -> its distinct tokens under review
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tokenreview")
        self.reviews = 0  # TokenReviews sent, for tests and metrics

    async def authenticate(self, authorization: str | None, client: str = "") -> Principal:
        token = bearer(authorization)
        key = token_key(token)
        verdict = self._cache.get(key)
        if verdict is None:
            pending = self._pending.get(key)
            if pending is not None:
                verdict = await asyncio.shield(pending)
            else:
                self._admit_review(client)
                loop = asyncio.get_running_loop()
                future: asyncio.Future[Principal | AuthFailed] = loop.create_future()
                self._pending[key] = future
                self._per_client[client] = self._per_client.get(client, 0) + 1
                try:
                    verdict = await loop.run_in_executor(self._threads, self._review, token)
                    self._cache.put(key, verdict, self.allowed_ttl if isinstance(verdict, Principal)
                                    else self.denied_ttl)
                    future.set_result(verdict)
                except BaseException as exc:
                    future.set_exception(exc)
                    future.exception()  # retrieved: waiters get it through shield
                    raise
                finally:
                    del self._pending[key]
                    left = self._per_client[client] - 1
                    if left:
                        self._per_client[client] = left
                    else:
                        del self._per_client[client]
        if isinstance(verdict, AuthFailed):
            raise verdict
        return verdict

    def _admit_review(self, client: str) -> None:
        """Room for one more review, or AuthBusy: the API server is not asked."""
        if self._per_client.get(client, 0) >= self.max_reviews_per_client:
            raise AuthBusy(429, f"Too Many Requests: {self.max_reviews_per_client} new credentials from this client "
                                "are being checked already; retry when they are answered", 1)
        if len(self._pending) >= self.max_reviews:
            raise AuthBusy(503, "Service Unavailable: too many new credentials are being checked at once; retry "
                                "shortly", 2)

    def _review(self, token: str) -> Principal | AuthFailed:
        """Blocking: TokenReview, then SubjectAccessReview. Runs in a worker thread."""
        self.reviews += 1
        spec = client.V1TokenReviewSpec(token=token, audiences=self.audiences or None)
        try:
            review = self._authn.create_token_review(client.V1TokenReview(spec=spec), _request_timeout=self.timeout)
        except ApiException as exc:
            raise self._unavailable("TokenReview", exc) from None
        except Exception as exc:
            raise self._unavailable("TokenReview", exc) from None
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            if self.audiences:
                return AuthFailed(401, "Unauthorized: the Kubernetes API server did not accept this bearer token "
                                       f"for audience {', '.join(self.audiences)} (create one with `kubectl create "
                                       f"token <service-account> --audience {self.audiences[0]}`)",
                                  error="invalid_token")
            return AuthFailed(401, "Unauthorized: the Kubernetes API server did not accept this bearer token",
                              error="invalid_token")
        if self.audiences and not set(status.audiences or ()) & set(self.audiences):
            logger.warning("TokenReview authenticated a token without naming a requested audience; refused (is "
                           "the API server audience-aware?)", extra={"audiences": self.audiences})
            return AuthFailed(401, f"Unauthorized: this bearer token is not for audience "
                                   f"{', '.join(self.audiences)}", error="invalid_token")
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
        self._threads.shutdown(wait=False, cancel_futures=True)
