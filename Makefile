# Junction: `make demo` shows the box at work, `make test` runs every test.
# `make deps` installs what is missing (Debian packages), and only then runs apt-get.

SWIFT ?= swift
DEBS := pkg-config zlib1g-dev libssl-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg \
        gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
        gstreamer1.0-libav time util-linux procps systemd \
        iptables ethtool iproute2 openssl curl chromium chromium-driver
# Peers for the uplink's interop tests and benchmark: tus implementations that are not ours; and
# Selenium, which drives the desk's browser tests in Debian's headless Chromium; cryptography and
# requests for the verifier and soak benchmarks (Ed25519 from OpenSSL, not from Junction).
PYDEPS := tuspy tuspyserver uvicorn selenium cryptography requests
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: fuzz deps build release release-arm64 release-amd64 test vectors demo bench bench-uplink bench-preview bench-verifier bench-soak bench-update image image-deps image-test image-test-arm64 bundle image-test-update image-test-settings clean

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
	@$(PYTHON) -c "import tusclient, tuspyserver, uvicorn, selenium, cryptography, requests" 2>/dev/null || { echo "Installing from PyPI: $(PYDEPS)"; \
	  $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore $(PYDEPS); }
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is needed (https://www.swift.org/install/linux/)"; exit 1; }

# The two executables by name: a plain `swift build` would also build the test-only target
# Tests/Hostile, whose property-testing library needs swift-testing (not there in a release build).
PRODUCTS := junction commune
RELEASE_FLAGS := -c release --static-swift-stdlib -Xlinker -s
build: deps
	for p in $(PRODUCTS); do $(SWIFT) build --product $$p || exit 1; done

release: deps
	for p in $(PRODUCTS); do $(SWIFT) build $(RELEASE_FLAGS) --product $$p || exit 1; done

# One build of everything; Media type-checked against trixie's FFmpeg 7.1 and sid's (the images'
# and the next release's; ~15 s, headers cached in .build-ffmpeg); then the unit tests, in
# parallel, and the integration tests (MediaIntegrationTests) apart, one at a time: they block
# while cameras, daemons and servers run, and on 2 cores running them side by side starves the
# concurrency pool (and every test's time limit). Each part prints the runner's own summary; a
# failure in the first still runs the second, and fails the target.
INTEGRATION := MediaIntegrationTests
test: deps
	$(SWIFT) build --build-tests
	bash Tests/Support/ffmpeg-compat.sh "$$($(SWIFT) build --show-bin-path)"
	$(PYTHON) Tests/Support/lean-check.py "$$($(SWIFT) build --show-bin-path)"
	@rc=0; \
	echo "== Unit tests, in parallel (every target but $(INTEGRATION))"; \
	$(SWIFT) test --skip-build --skip $(INTEGRATION) || rc=1; \
	echo "== The bundle format's test vectors, by a second verifier written from its document alone (Tests/Vectors/verify.py)"; \
	$(PYTHON) Tests/Vectors/verify.py --table Tests/Vectors/verdicts.tsv || rc=1; \
	echo "== Integration tests, one at a time ($(INTEGRATION))"; \
	$(SWIFT) test --skip-build --no-parallel --filter $(INTEGRATION) || rc=1; \
	exit $$rc

# Every fuzz target (Tests/FuzzTests) for FUZZ_SECONDS each (default 60; `make test` gives each 2 s
# on the committed seed corpus). A crash fails the run; add the input to Tests/FuzzTests/Corpus/.
FUZZ_SECONDS ?= 60
fuzz: deps
	$(SWIFT) build --build-tests
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(SWIFT) test --skip-build --filter FuzzTests

# The bundle format's test vectors (Tests/Vectors/cases), made again from a synthetic recording by
# Tests/EvidenceTests/VectorTests.swift; `make test` fails when the committed ones differ.
vectors: deps
	$(SWIFT) build --build-tests
	JUNCTION_WRITE_VECTORS=1 $(SWIFT) test --skip-build --filter VectorTests

demo: build
	bash Tests/Support/demo.sh "$$($(SWIFT) build --show-bin-path)/junction"

bench: release
	bash Benchmarks/recorder.sh "$$($(SWIFT) build -c release --show-bin-path)/junction"
	$(MAKE) bench-uplink
	$(MAKE) bench-preview
	$(MAKE) bench-verifier
	$(MAKE) bench-soak
	$(MAKE) bench-update

# The uplink against tuspy on a bad link (a network namespace; needs root). SIZE_MB=50 by default.
bench-uplink: release
	$(PYTHON) Benchmarks/uplink.py "$$($(SWIFT) build -c release --show-bin-path)/junction" "$$($(SWIFT) build -c release --show-bin-path)/commune"

# A 10-minute footage request over a 1 Mbit/s link (a network namespace; needs root): the
# preview against the video, and narrowing (issue 14). MINUTES=10 by default.
bench-preview: release
	$(PYTHON) Benchmarks/preview.py "$$($(SWIFT) build -c release --show-bin-path)/junction" "$$($(SWIFT) build -c release --show-bin-path)/commune"

# ClipProof and `commune verify` on a 2 GiB sealed segment and a 10^6-record chain (issue 22):
# time and peak memory against sha256sum and a seal-only check in Python. No root needed.
bench-verifier: release
	$(PYTHON) Benchmarks/verifier.py "$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/commune"

# One box hostile in every way issue 22 found, 20 honest boxes and an officer on the desk, for
# MINUTES (10) against one commune on loopback. No root needed.
bench-soak: release
	$(PYTHON) Benchmarks/soak.py "$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/commune"

# Bytes a box fetches for a release that changes only junction (issue 24), against the whole
# bundle, the image compressed whole by zstd -19 and zstd --patch-from: the release junction against the
# one built from BASE (default HEAD~1, in a worktree under .build-bench-old), or OLD_JUNCTION=PATH;
# BASE_IMAGE=a card image from make image takes that card's slot A as the old root file system.
# Then the same bundle over the bench-uplink link, steady and with 10 flaps: bytes fetched twice.
# No root needed (mke2fs -d and debugfs make the root file systems; the link is on loopback).
BASE ?= HEAD~1
bench-update: release
	@old="$(OLD_JUNCTION)"; if [ -z "$$old" ]; then \
	  git worktree remove --force .build-bench-old 2>/dev/null; rm -rf .build-bench-old; \
	  git worktree add --detach .build-bench-old $(BASE) >/dev/null && \
	  (cd .build-bench-old && $(SWIFT) build $(RELEASE_FLAGS) --product junction) && \
	  old="$$(cd .build-bench-old && $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/junction"; fi; \
	$(PYTHON) Benchmarks/update.py "$$old" "$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/junction" \
	  "$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/commune"

# The SD-card image (image/build.sh; needs root): Debian trixie for ARCH=amd64 (PCs, QEMU) or
# ARCH=arm64 (Raspberry Pi 4, arm64 UEFI), with the junction that `make release-ARCH` cross-builds
# against trixie (or JUNCTION_BIN=PATH). KERNEL=backports takes trixie-backports' kernel, which a
# Raspberry Pi 5 needs (README: "Building the image"). IMAGE_FLAGS=--reuse-rootfs keeps the
# rootfs of an earlier KEEP_WORK=1 build of the same version (arm64's takes ~18 min to make).
ARCH ?= amd64
KERNEL ?= stable
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

# RELEASE= is the version the image's slot reports (default: the source's JunctionVersion);
# RELEASE_KEYS= the public keys its boxes trust for updates (default: the TEST-ONLY key, whose
# private half is in this repository: never for boxes on poles).
RELEASE ?=
RELEASE_KEYS ?= $(CURDIR)/image/release-keys.TEST-ONLY
RELEASE_KEY ?= $(CURDIR)/image/release-key.TEST-ONLY
image: image-deps
	@[ -n "$(JUNCTION_BIN)" ] || $(MAKE) --no-print-directory release-$(ARCH)
	$(SUDO) bash image/build.sh --arch $(ARCH) --kernel $(KERNEL) --out $(IMAGE_OUT) $(IMAGE_FLAGS) \
	  $(if $(RELEASE),--release $(RELEASE)) --keys $(RELEASE_KEYS) $(BUNDLE_FLAGS) \
	  --bin "$(or $(JUNCTION_BIN),$(CURDIR)/.build-cross/out/junction-$(ARCH))"

# The image and the release's signed update bundle (IMAGE_OUT/junction-RELEASE-ARCH.jub), signed
# with RELEASE_KEY (default the TEST-ONLY key); `commune releases add` takes it.
bundle: image-deps
	$(SWIFT) build --product junction
	$(MAKE) --no-print-directory image BUNDLE_FLAGS="--bundle-key $(RELEASE_KEY) --packer $$($(SWIFT) build --show-bin-path)/junction"

# Builds the image, boots it in QEMU (TCG) with a synthetic camera and a commune on the host, cuts
# the power three times, and checks it records, uploads a flag byte-identical, loses at most 2 s
# to a power cut and recovers (image/test.py). amd64 ~15 min; arm64 runs emulated, ~30 min.
# The commune on the host is the debug build `make test` already made. IMAGE_TEST_FLAGS passes
# more to image/test.py, e.g. "--memory 512 --reader junction --activity" (a 512 MB board).
image-test: TEST_ARCH = amd64
image-test-arm64: TEST_ARCH = arm64
image-test image-test-arm64: image-deps
	$(MAKE) --no-print-directory image ARCH=$(TEST_ARCH)
	$(SWIFT) build --product commune
	$(SUDO) $(PYTHON) image/test.py --arch $(TEST_ARCH) \
	  --image "$$(ls -t $(IMAGE_OUT)/junction-*-$(TEST_ARCH).img | head -1)" \
	  --commune "$$($(SWIFT) build --show-bin-path)/commune" $(IMAGE_TEST_FLAGS)

# Over-the-air updates in QEMU (image/test_update.py): the image, then three releases made from
# its slot A and signed with the TEST-ONLY key; A→B while a flagged upload runs, a bad release
# rolled back within its tries, WRITE_CUTS power cuts in a slot write and BOOT_CUTS in the early
# boot of a blessed slot. amd64 ~1 h under TCG; ARCH=arm64 emulated, about twice that.
WRITE_CUTS ?= 20
BOOT_CUTS ?= 10
image-test-update: image-deps
	@[ -n "$(IMAGE)" ] || $(MAKE) --no-print-directory image ARCH=$(ARCH)
	$(SWIFT) build --product commune
	$(SWIFT) build --product junction
	$(SUDO) $(PYTHON) image/test_update.py --arch $(ARCH) --write-cuts $(WRITE_CUTS) --boot-cuts $(BOOT_CUTS) \
	  --image "$(or $(IMAGE),$$(ls -t $(IMAGE_OUT)/junction-*-$(ARCH).img | head -1))" \
	  --commune "$$($(SWIFT) build --show-bin-path)/commune" --junction "$$($(SWIFT) build --show-bin-path)/junction"

# Settings sent from the commune, in QEMU (image/test_settings.py): kept once the box records
# with them, rolled back at the deadline, a power cut during the check, the installer's edit of
# the card superseding them. amd64 ~15 min under TCG; ARCH=arm64 emulated, about twice that.
image-test-settings: image-deps
	@[ -n "$(IMAGE)" ] || $(MAKE) --no-print-directory image ARCH=$(ARCH)
	$(SWIFT) build --product commune
	$(SUDO) $(PYTHON) image/test_settings.py --arch $(ARCH) \
	  --image "$(or $(IMAGE),$$(ls -t $(IMAGE_OUT)/junction-*-$(ARCH).img | head -1))" \
	  --commune "$$($(SWIFT) build --show-bin-path)/commune"

clean:
	rm -rf .build .build-ffmpeg demo-run   # .build-cross (the cross-build roots, ~5 GB): sudo rm -rf it by hand
