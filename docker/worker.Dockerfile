# The Weaver worker's image: Node.js, git, and bubblewrap for the command sandbox.
# The worker runs as root in the container; the sandbox runs commands as uid 65534
# (WEAVER_SANDBOX_UID). bwrap needs user namespaces and its own /proc mount, hence the
# security_opt entries next to this image in docker-compose.yml.
FROM node:20-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
