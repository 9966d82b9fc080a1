# Junction: `make demo` shows the box at work, `make test` runs every test.
# `make deps` installs what is missing (Debian packages), and only then runs apt-get.

SWIFT ?= swift
DEBS := pkg-config libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg \
        gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
        gstreamer1.0-libav time util-linux procps systemd \
        iptables ethtool iproute2 openssl curl
# Peers for the uplink's interop tests and benchmark: tus implementations that are not ours.
PYDEPS := tuspy tuspyserver uvicorn
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build release release-arm64 release-amd64 test demo bench bench-uplink image image-deps image-test image-test-arm64 clean

# $(call apt-missing,PACKAGES,NAME): installs those of PACKAGES that are missing, running
# apt-get update first, and nothing at all when every one is there.
define apt-missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "$(2): all present"; fi
endef

deps:
	$(call apt-missing,$(DEBS),deps)
	@$(PYTHON) -c "import tusclient, tuspyserver, uvicorn" 2>/dev/null || { echo "Installing from PyPI: $(PYDEPS)"; \
	  $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore $(PYDEPS); }
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is needed (https://www.swift.org/install/linux/)"; exit 1; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --static-swift-stdlib -Xlinker -s

# One build of everything; Media type-checked against trixie's FFmpeg 7.1 and sid's (the images'
# and the next release's; ~15 s, headers cached in .build-ffmpeg); then the runner's own summary
# (XCTest, then Swift Testing). Tests run
# one at a time: the integration tests block while cameras and daemons run, and on 2 cores
# running them side by side starves the concurrency pool (and every test's time limit).
test: deps
	$(SWIFT) build --build-tests
	bash Tests/Support/ffmpeg-compat.sh "$$($(SWIFT) build --show-bin-path)"
	$(SWIFT) test --skip-build --no-parallel

demo: build
	bash Tests/Support/demo.sh "$$($(SWIFT) build --show-bin-path)/junction"

bench: deps
	$(SWIFT) build -c release --static-swift-stdlib -Xlinker -s
	bash Benchmarks/recorder.sh "$$($(SWIFT) build -c release --show-bin-path)/junction"
	$(MAKE) bench-uplink

# The uplink against tuspy on a bad link (a network namespace; needs root). SIZE_MB=50 by default.
bench-uplink: deps
	$(SWIFT) build -c release --static-swift-stdlib -Xlinker -s
	$(PYTHON) Benchmarks/uplink.py "$$($(SWIFT) build -c release --show-bin-path)/junction" "$$($(SWIFT) build -c release --show-bin-path)/commune"

# The SD-card image (image/build.sh; needs root). ARCH=amd64 uses this machine's release build;
# ARCH=arm64 needs JUNCTION_BIN=/path/to/an/arm64/junction (README: "Installing a box").
ARCH ?= amd64
IMAGE_OUT ?= $(CURDIR)/.build/image
IMAGE_DEBS := mmdebstrap dosfstools mtools fdisk e2fsprogs zstd qemu-system-x86 qemu-system-arm \
        qemu-user-static binfmt-support ovmf qemu-efi-aarch64 arch-test socat rsync binutils debian-archive-keyring
image-deps: deps
	$(call apt-missing,$(IMAGE_DEBS),image-deps)

# The image's junction for ARCH (release, static stdlib, stripped), linked against Debian trixie's
# glibc and FFmpeg 7.1: Debian sid's Swift in a chroot, a trixie sysroot (image/cross-build.sh;
# root; cached under .build-cross). First run ~30 min for arm64, later runs incremental.
release-arm64 release-amd64: release-%: image-deps
	$(SUDO) bash image/cross-build.sh --arch $*

image: image-deps
	@if [ "$(ARCH)" = amd64 ] && [ -z "$(JUNCTION_BIN)" ]; then $(MAKE) --no-print-directory release; fi
	$(SUDO) bash image/build.sh --arch $(ARCH) --out $(IMAGE_OUT) \
	  --bin "$(if $(JUNCTION_BIN),$(JUNCTION_BIN),$(if $(filter amd64,$(ARCH)),$$($(SWIFT) build -c release --show-bin-path)/junction,))"

# Builds the amd64 image, boots it in QEMU twice (a power cut between) and checks it records.
# About 10-15 minutes on 2 cores; not part of `make test`.
image-test: image-deps
	$(MAKE) --no-print-directory image ARCH=amd64
	$(SUDO) $(PYTHON) image/test.py --image "$$(ls -t $(IMAGE_OUT)/junction-*-amd64.img | head -1)" \
	  --commune "$$($(SWIFT) build -c release --show-bin-path)/commune"

# The arm64 image with a stand-in binary (image/standin.c): partitions, Raspberry Pi boot files,
# units, and a boot to multi-user under qemu-system-aarch64 -M virt. No recording check.
image-test-arm64: image-deps
	mkdir -p $(IMAGE_OUT)
	"$$(dirname "$$(readlink -f "$$(command -v $(SWIFT))")")/clang" --target=aarch64-linux-gnu -nostdlib -static \
	  -ffreestanding -fuse-ld=lld -O2 -o $(IMAGE_OUT)/junction-standin-arm64 image/standin.c
	$(MAKE) --no-print-directory image ARCH=arm64 JUNCTION_BIN=$(IMAGE_OUT)/junction-standin-arm64
	$(SUDO) $(PYTHON) image/test.py --arch arm64 --image "$$(ls -t $(IMAGE_OUT)/junction-*-arm64.img | head -1)"

clean:
	rm -rf .build demo-run
