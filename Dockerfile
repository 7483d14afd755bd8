# Build a wheel of the package alone in one stage; in a slim second one install the hashed pins of
# requirements/runtime.txt (scripts/lock: the versions CI tested), then that wheel without resolving anything.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md plugin.yaml ./
COPY schemas ./schemas
COPY higress_ops ./higress_ops
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin higress-ops
COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/runtime.txt && rm /tmp/runtime.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && pip check && rm -rf /wheels
USER 10001:10001
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
ENTRYPOINT ["higress-ops"]
CMD ["serve", "--kube", "--namespace", "higress-system", "--configmap", "higress-ops-config", "--wait-for-config", \
     "--auth", "kubernetes", "--auth-audience", "higress-ops", "--host", "0.0.0.0", "--port", "8080", "--admin-port", \
     "8081"]
