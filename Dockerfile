# One image for the four services: `docker run IMAGE services.ingress` (or .processor, .http_worker, .scheduler,
# or devtools.create_topics). Dependencies are installed from requirements.lock (exact pins).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SWITCHBOARD_INGRESS_HOST=0.0.0.0

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.lock pyproject.toml ./
RUN mkdir shared services devtools \
    && pip install -c requirements.lock . \
    && pip uninstall -y switchboard

COPY shared ./shared
COPY services ./services
COPY devtools ./devtools
RUN pip install --no-deps -c requirements.lock . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin switchboard \
    && mkdir -p /var/lib/switchboard && chown 10001 /var/lib/switchboard

USER 10001
# 8080 ingress, 8081 processor, 8082 http-worker, 8083 scheduler: /metrics, /livez, /readyz on each.
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["python", "-m"]
CMD ["services.ingress"]
