# Berth's container images without a registry (scripts/images.sh): the host's
# static binaries on the Containerfile's own scratch stages, built by buildah
# into OCI archives under ~/.cache/berth/images, then imported into the local
# cluster's node (its containerd, namespace k8s.io), where the kubelet finds
# them as berth.local/<image>:<tag>. Two tags by default: the workspace
# version (the charts' appVersion) and <version>-next, the image a rollout
# test changes to (tests/e2e/tests/node/rollout.rs).
IMAGE_TAG := $(shell scripts/images.sh --print-tag)
IMAGE_TAGS ?= $(IMAGE_TAG) $(IMAGE_TAG)-next

.PHONY: images

images: ## build berth.local/ images of the operator, services and pause (buildah, no registry); load them into the node (IMAGE_TAGS=)
	scripts/images.sh --load $(addprefix --tag ,$(IMAGE_TAGS))
