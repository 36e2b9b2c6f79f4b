# Itinerary's image: `docker build -t itinerary:0.1.0 .` (deploy/ runs it in a cluster).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# A fixed numeric uid, so the pod's runAsNonRoot/runAsUser can check it.
RUN groupadd --system --gid 10001 itinerary \
    && useradd --system --uid 10001 --gid itinerary --no-create-home itinerary
USER 10001

EXPOSE 8080
CMD ["python", "itinerary.py"]
