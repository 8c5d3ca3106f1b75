# The Weaver worker's image: Node.js, git, bubblewrap for the command sandbox, and nsenter
# (util-linux), with which the worker puts its egress proxy in the network namespace of a command
# that may have network (README "The sandbox"). The worker runs as root in the container; each workspace's commands run as its
# own uid from 200000-299999 (WEAVER_SANDBOX_UID_RANGE). bwrap needs user namespaces and its
# own /proc mount, hence cap_add SYS_ADMIN (for Docker's default seccomp profile) and the two
# security_opt entries next to this image in docker-compose.yml, each explained there.
FROM node:20-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Two glibc malloc arenas instead of up to 8 per core: a flat RSS over long batches (README "Batches of thousands").
ENV MALLOC_ARENA_MAX=2
