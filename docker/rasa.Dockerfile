# The Rasa engine image (Rasa 3.6 needs Python 3.10; it cannot share the gateway's environment).
# Build context: the repository root. The model is trained at build time, so a container starts serving at once
# and every replica runs the same model. Custom actions are not here: they run in the gateway
# (ACTION_ENDPOINT_URL, set by docker-compose.yml, is expanded by bot/endpoints.yml at start).
FROM python:3.10-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONPATH=/app/bot/engine
# PYTHONPATH: the gateway's input channel (bot/credentials.yml: gateway_channel.GatewayInput) is imported from there.

WORKDIR /app

# Training writes models/ and its cache (.rasa/) into the working directory, hence /app owned by the user.
COPY bot/requirements.txt bot/requirements.txt
RUN pip install -r bot/requirements.txt \
    && useradd --create-home --uid 10001 rasa \
    && chown rasa:rasa /app \
    && mkdir /rasa-data && chown rasa:rasa /rasa-data

# Dialogues in progress live in SQLite here (bot/endpoints.yml); mount a volume on /rasa-data to keep them.
ENV RASA_TRACKER_DB=/rasa-data/tracker.db

# Only what training and serving read (config.yml names the jieba dictionary as bot/jieba, relative to /app).
COPY bot/config.yml bot/endpoints.yml bot/credentials.yml bot/
COPY bot/engine/ bot/engine/
COPY bot/jieba/ bot/jieba/
COPY training_data/ training_data/

USER rasa
RUN rasa train --config bot/config.yml --domain training_data/domain --data training_data/data --out models \
    && rm -rf .rasa

EXPOSE 5005
# The health check (GET /status) is declared in docker-compose.yml.
CMD ["rasa", "run", "--enable-api", "--model", "models", "--endpoints", "bot/endpoints.yml", \
     "--credentials", "bot/credentials.yml", "--interface", "0.0.0.0", "--port", "5005"]
