import Evidence
import ArgumentParser
import Config
import Media
import Recorder
import Ring
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension JunctionCommand {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a time range to one MP4 (no re-encoding) with a manifest, e.g. onto a USB stick.",
            discussion: """
                Every source segment's sha256 is checked first; a corrupted one stops the export
                (nothing is written) unless --skip-corrupt. On a FAT/exFAT stick the video is split
                into parts under 4 GiB. Works with the recorder running or stopped; the card is only read.
                Examples:
                  junction export --from 21:35 --to 21:50 -o /media/usb
                  junction export --from "2026-11-29 21:35" --to "2026-11-29 21:50" -o /media/usb/robbery.mp4
                """)

        @OptionGroup var options: BoxOptions
        @Option(help: "Start of the range.") var from: String
        @Option(help: "End of the range.") var to: String
        @Option(name: [.customShort("o"), .long], help: "A folder (a name is made up) or a .mp4 file to write.") var output: String
        @Flag(help: "Leave corrupted segments out (listed in the manifest) instead of stopping.") var skipCorrupt = false
        @Option(help: ArgumentHelp("Split into parts of at most this size, e.g. 2GB (automatic on FAT/exFAT: 4 GiB).", valueName: "size"))
        var splitSize: String?
        @Flag(help: "Print the manifest as JSON on stdout.") var json = false

        func run() async throws {
            let config = try options.load()
            Media.Snapshot.quietFFmpegLogs()
            let now = Timestamp.now()
            let start: Timestamp, end: Timestamp
            do {
                start = try TimeExpression.parse(from, now: now)
                end = try TimeExpression.parse(to, now: now)
            } catch {
                throw ValidationError(error.description)
            }
            guard end > start else { throw ValidationError("--to (\(to)) is not after --from (\(from)): swap them") }
            var split: Int64?
            if let splitSize {
                guard let b = ByteSize(parsing: splitSize), b.bytes >= 1_000_000 else {
                    throw ValidationError("--split-size \(splitSize) is not a size of at least 1MB, e.g. 2GB")
                }
                split = Int64(b.bytes)
            }

            let ring = try await config.openRing(readOnly: true)
            let camera = config.camera.id
            let segments = try await ring.segments(camera: camera, from: start, to: end)
            let recordedGaps = try await ring.gaps(camera: camera, from: start, to: end)
            let all = try await ring.segments(camera: camera)
            let paths = Dictionary(uniqueKeysWithValues: segments.map { ($0.id, ring.path(of: $0)) })
            // What proves the range (issue 13), read while the index is open.
            let records = try await ring.chainRecords(from: start, to: end)
            // The countersignatures of the records carried (one past them would read as a cut tail).
            let firstSeq = records.first?.record?.seq ?? 0, lastSeq = records.last?.record?.seq ?? 0
            let countersigns = try await ring.countersigns(device: config.device.id).filter { $0.seq >= firstSeq && $0.seq <= lastSeq }
            let binding = try await ring.keyBinding()
            await ring.close()
            // The box signs the manifest it writes (issue 23): without its key nothing is written.
            var signer: DeviceKey?
            if !records.isEmpty {
                do { signer = try DeviceKey.load(path: config.deviceKeyPath) } catch {
                    throw CLIError("cannot sign the export: \(error). Run junction export as root (sudo junction export …). Nothing was written.")
                }
            }
            guard !segments.isEmpty else {
                let held = all.first.map { "the ring holds \(Output.local($0.start)) → \(Output.local(all.last!.end))" } ?? "the ring is empty"
                throw CLIError("nothing recorded between \(Output.local(start)) and \(Output.local(end)): \(held). Nothing was written.")
            }

            // Where it goes, and whether it fits.
            let target = try Target(output, device: config.device.id, camera: camera, start: start)
            let total = segments.reduce(Int64(0)) { $0 + $1.bytes }
            if let space = FileSystem.space(target.directory), space.available < total + 8_000_000 {
                throw CLIError("\(target.directory) has \(Output.bytes(space.available)) free; the export needs about \(Output.bytes(total)). Use a bigger stick or a shorter range. Nothing was written.")
            }
            if split == nil, target.isFAT { split = (4 << 30) - (64 << 20) }

            // Check every source before using any of it.
            let progress = Progress(enabled: isatty(2) == 1 && !json)
            var verified: [Segment] = []
            var corrupt: [Segment] = []
            for (n, s) in segments.enumerated() {
                progress.show("Checking", n, segments.count)
                let ok = (try? FileSystem.sha256(paths[s.id]!)) == s.sha256
                if ok { verified.append(s) } else { corrupt.append(s) }
            }
            if !corrupt.isEmpty && !skipCorrupt {
                progress.done()
                throw CLIError("""
                    \(corrupt.count) source segment(s) are corrupted (their sha256 no longer matches the index): \
                    \(corrupt.map { "\(Output.local($0.start)) (\($0.path))" }.joined(separator: ", ")). Nothing was written.
                    Run junction check --deep, then export again with --skip-corrupt to leave them out (the manifest lists them).
                    """)
            }
            guard !verified.isEmpty else { throw CLIError("every segment in the range is corrupted; nothing was written") }

            // Write the parts.
            let writer = PartedExport(split: split) { n in target.partPath(n ?? 1, numbered: n != nil) }
            var partOf: [Int64: Int] = [:]
            let parts: [Manifest.Part]
            do {
                for (n, s) in verified.enumerated() {
                    progress.show("Exporting", n, verified.count)
                    partOf[s.id] = try writer.add(paths[s.id]!, bytes: s.bytes, startMicroseconds: s.start.milliseconds * 1000,
                                                  endMicroseconds: s.end.milliseconds * 1000)
                }
                try writer.finish()
                parts = try writer.parts.map {
                    Manifest.Part(file: $0.path, bytes: $0.bytes, sha256: try FileSystem.sha256($0.path),
                                  from: Timestamp(milliseconds: $0.startMicroseconds / 1000), to: Timestamp(milliseconds: $0.endMicroseconds / 1000),
                                  segments: $0.segments)
                }
            } catch {
                writer.abandon()
                progress.done()
                throw CLIError("the export stopped: \(error). Parts already finished stay in \(target.directory); nothing on the card was changed.")
            }
            progress.done()

            var manifest = Manifest(
                device: config.device.id, camera: camera, from: start, to: end, exportedAt: .now(), junctionVersion: JunctionVersion.current,
                clockSynchronized: verified.allSatisfy(\.clockSynchronized), parts: parts,
                segments: verified.map { .init(file: $0.path, start: $0.start, end: $0.end, bytes: $0.bytes, sha256: $0.sha256, verified: true, part: partOf[$0.id]) }
                    + corrupt.map { .init(file: $0.path, start: $0.start, end: $0.end, bytes: $0.bytes, sha256: $0.sha256, verified: false, part: nil) },
                gaps: Self.gaps(in: start, end, segments: verified, recorded: recordedGaps))
            // The proof: the sealed originals, their chain records, the box's key and the
            // commune's countersignatures, for junction verify / commune verify (issue 13).
            if !records.isEmpty, let key = signer?.publicKey {
                let proofName = target.stem + ".proof"
                let name = { (s: Segment) in String(s.path.split(separator: "/").last ?? "") }
                let files = Set(records.compactMap { $0.record?.file })
                let sealed = verified.filter { files.contains(name($0)) }
                do {
                    try Bundle.writeProof(into: target.directory + "/" + proofName, publicKey: key.rawRepresentation.base64EncodedString(),
                                          chain: records, countersigns: countersigns, binding: binding.flatMap { $0.deviceKey == key.rawRepresentation.base64EncodedString() ? $0 : nil },
                                          segments: sealed.map { (name($0), paths[$0.id]!) })
                    manifest.proof = proofName
                } catch {
                    throw CLIError("cannot write the proof folder \(proofName): \(error). The video parts are written; free some space and export again.")
                }
            }
            let manifestText = try Output.json(manifest)
            let manifestPath = target.manifestPath
            guard FileManager.default.createFile(atPath: manifestPath, contents: Data(manifestText.utf8)) else {
                throw CLIError("cannot write \(manifestPath); the video parts are written")
            }
            if let proof = manifest.proof, let signer {
                do { try Bundle.signManifest(at: manifestPath, proof: target.directory + "/" + proof, signer: .box, key: signer) } catch {
                    throw CLIError("cannot sign \(manifestPath): \(error). The video parts are written; export again.")
                }
            }
            let fd = open(target.directory, O_RDONLY | O_DIRECTORY)
            if fd >= 0 { fsync(fd); close(fd) }

            if json { print(manifestText); return }
            let span = "\(Output.local(verified.first!.start)) → \(Output.local(verified.last!.end))"
            print("Exported \(verified.count) segments, \(span), to:")
            for p in parts { print("  \(p.file)  \(Output.bytes(p.bytes))  sha256 \(p.sha256.prefix(16))…") }
            if parts.count > 1 { print("  (split into \(parts.count) parts: \(target.isFAT ? "FAT/exFAT cannot hold files of 4 GiB or more" : "--split-size"))") }
            print("Manifest: \(manifestPath)")
            if let proof = manifest.proof {
                print("Proof:    \(target.directory)/\(proof) (sealed originals and their chain: junction verify \(manifestPath))")
            } else {
                print("No proof folder: this footage was recorded without sealing (junction doctor: evidence)")
            }
            if !manifest.gaps.isEmpty {
                print("Not in the export (not recorded): " + manifest.gaps.map { "\(Output.local($0.from)) → \(Output.local($0.to))" }.joined(separator: ", "))
            }
            if !corrupt.isEmpty { print("Left out, corrupted: \(corrupt.count) segment(s), listed in the manifest with verified = false") }
            if !manifest.clockSynchronized { print("Note: some footage was recorded before the box's clock was synchronised; times may be off.") }
        }

        /// Stretches of the requested range the export does not cover.
        static func gaps(in from: Timestamp, _ to: Timestamp, segments: [Segment], recorded: [Gap]) -> [Manifest.Hole] {
            Manifest.holes(from: from, to: to, covered: segments.map { ($0.start, $0.end) }) { a, b in
                recorded.first { $0.end > a && $0.start < b }?.reason ?? "not in the ring"
            }
        }
    }
}

/// What `junction export` writes beside the video: the format the commune's desk writes too.
typealias Manifest = EvidenceManifest

/// Where an export goes: a folder or a named .mp4, and what kind of filesystem that is.
struct Target {
    let directory: String
    let stem: String
    let isFAT: Bool

    init(_ output: String, device: String, camera: String, start: Timestamp) throws {
        if Self.isDirectory(output) {
            directory = output.hasSuffix("/") && output.count > 1 ? String(output.dropLast()) : output
            stem = "\(device)-\(camera)-\(start.compact)"
        } else {
            let slash = output.lastIndex(of: "/")
            directory = slash.map { output[..<$0].isEmpty ? "/" : String(output[..<$0]) } ?? "."
            var name = String(slash.map { output[output.index(after: $0)...] } ?? Substring(output))
            if name.lowercased().hasSuffix(".mp4") { name = String(name.dropLast(4)) }
            guard !name.isEmpty else { throw ValidationError("-o \(output) does not name a file or folder") }
            stem = name
        }
        guard Self.isDirectory(directory) else {
            throw CLIError("\(directory) does not exist: is the USB stick mounted? (lsblk shows it; mount it, e.g. on /media/usb)")
        }
        guard access(directory, W_OK) == 0 else {
            throw CLIError("cannot write to \(directory): \(String(cString: strerror(errno))). Is the stick mounted read-only or full? Nothing was written.")
        }
        isFAT = ["vfat", "msdos", "exfat", "fat"].contains(Self.filesystemType(of: directory) ?? "")
        if FileManager.default.fileExists(atPath: partPath(1, numbered: false)) || FileManager.default.fileExists(atPath: partPath(1, numbered: true)) {
            throw CLIError("\(partPath(1, numbered: false)) already exists: choose another name with -o; nothing was overwritten")
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The type of the filesystem holding `path`, from /proc/mounts (the longest mount point
    /// that contains it).
    static func filesystemType(of path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        let full = String(cString: real)
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
        var best: (point: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3 else { continue }
            let point = String(f[1]).replacing("\\040", with: " ")
            let inside = point == "/" || full == point || full.hasPrefix(point + "/")
            if inside, point.count >= (best?.point.count ?? -1) { best = (point, String(f[2])) }
        }
        return best?.type
    }

    func partPath(_ n: Int, numbered: Bool) -> String { numbered ? "\(directory)/\(stem)-part\(n).mp4" : "\(directory)/\(stem).mp4" }
    var manifestPath: String { "\(directory)/\(stem).manifest.json" }
}

/// A one-line progress bar on stderr (only on a terminal).
struct Progress {
    let enabled: Bool

    func show(_ what: String, _ n: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let width = 30
        let filled = width * n / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        Self.err("\r\(what) [\(bar)] \(n)/\(total)")
    }

    func done() {
        if enabled { Self.err("\r\u{1B}[K") }
    }

    static func err(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
