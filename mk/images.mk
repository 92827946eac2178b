# Berth's container images without a registry (scripts/images.sh): the host's
# static binaries on the Containerfiles' own scratch stages, built by buildah
# into OCI archives under ~/.cache/berth/images, then imported into the local
# cluster's node (its containerd, namespace k8s.io), where the kubelet finds
# them as berth.local/<image>:<tag>. Two tags for a rollout test:
#   make images IMAGE_TAGS="0.1.0 0.1.0-next"
# The default tag is the workspace version, the charts' appVersion.
IMAGE_TAGS ?= $(shell scripts/images.sh --print-tag)

.PHONY: images

images: ## build berth.local/ images of the operator, services and pause (buildah, no registry); load them into the node (IMAGE_TAGS=)
	scripts/images.sh --load $(addprefix --tag ,$(IMAGE_TAGS))
