import Evidence
import ArgumentParser
import Commune
import Desk
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
#if canImport(Glibc)
import Glibc
#endif
import NIOSSL
import Logging
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `commune`: the commune server. `commune serve` receives uploads; the other subcommands
/// administer it from the server machine (they read the data directory, no credentials).
@main
struct CommuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commune",
        abstract: "The commune server: receives verified footage uploads from junction boxes.",
        discussion: """
            Examples:
              commune devices add thaithuy-0042 --data /srv/commune
              commune serve --data /srv/commune --listen 127.0.0.1:8080 --insecure-http
              commune request --data /srv/commune --device thaithuy-0042 --from "2026-11-29 14:02" --to "2026-11-29 14:09" --reason "accident QL37B"
              commune requests --data /srv/commune
              commune clips --data /srv/commune --json
            """,
        subcommands: [Serve.self, Devices.self, RequestFootage.self, Requests.self, Narrow.self, Clips.self, Operators.self, Verify.self, PublishedKey.self, Releases.self, RolloutCommand.self, SettingsCommand.self])
}

/// Who acted, for the audit log, when a command on the server did: no officer signed in, but the
/// shell's user is named (`commune request`, `narrow`, `operators password`, `devices rekey`).
var commandLine: String {
    let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
    return "command line (user \(TerminalText.safe(user, limit: 32)))"
}

struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The server's data directory (clips and catalog).", valueName: "dir"))
    var data: String?
    @Option(help: ArgumentHelp("commune.toml, whose [server] data is used when --data is not given.", valueName: "file"))
    var config: String?

    init() {}
    init(data: String) { self.data = data }

    func validate() throws {
        _ = try directory()
    }

    /// The data directory, made absolute: --data, else [server] data of --config.
    func directory() throws -> String {
        if let data { return try absoluteDataPath(data) }
        if let config {
            do {
                if let d = try CommuneConfiguration.load(path: config).data { return try absoluteDataPath(d) }
            } catch let e as ValidationError {
                throw e
            } catch {
                throw ValidationError("\(error)")
            }
            throw ValidationError("\(config) has no [server] data: pass --data DIR")
        }
        throw ValidationError("say where the server's data is: --data DIR, or --config commune.toml")
    }

    /// The catalog. A command that only reads (`create` false) never makes the directory or a
    /// catalog: a mistyped --data says so instead of leaving an empty server behind.
    func catalog(create: Bool = true) async throws -> Catalog {
        let data = try directory()
        if !create {
            guard FileManager.default.fileExists(atPath: data + "/catalog.sqlite") else {
                throw ValidationError("there is no commune data in \(data) (no catalog.sqlite): check --data, or start the server there first")
            }
        }
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        var logger = Logger(label: "commune")
        logger.logLevel = .warning
        return try await Catalog.open(path: data + "/catalog.sqlite", logger: logger)
    }

    /// The commune's public key (base64) as `commune serve` wrote it, once it has run here.
    var communePublicKey: String? {
        guard let data = try? directory(), let text = FileManager.default.contents(atPath: data + "/commune-key.pub") else { return nil }
        let key = String(decoding: text.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return DeviceKey.publicKey(base64: key) != nil ? key : nil
    }

    /// Opens the catalog, runs `body`, and closes it whatever happens.
    func withCatalog<T>(_ body: (Catalog) async throws -> T) async throws -> T {
        let catalog = try await catalog()
        do {
            let result = try await body(catalog)
            await catalog.close()
            return result
        } catch {
            await catalog.close()
            throw error
        }
    }
}

extension CommuneCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Receive uploads (tus 1.0.0 at /files/) and heartbeats (/api/v1/heartbeat).",
            discussion: """
                Settings come from --config commune.toml ([server] data, listen, cert, key, insecure_http;
                [limits] max_upload_bytes, device_quota_bytes); flags win over the file.
                Examples:
                  commune serve --config /etc/commune/commune.toml
                  commune serve --data /srv/commune --listen 0.0.0.0:8443 --cert chain.pem --key key.pem
                  commune serve --data /srv/commune --listen 127.0.0.1:8080 --insecure-http
                """)

        @Option(help: ArgumentHelp("commune.toml to read.", valueName: "file")) var config: String?
        @Option(help: ArgumentHelp("The server's data directory (clips and catalog).", valueName: "dir")) var data: String?
        @Option(help: "Address and port to listen on (default 127.0.0.1:8080).") var listen: String?
        @Option(help: ArgumentHelp("The server's TLS certificate chain (PEM).", valueName: "pem")) var cert: String?
        @Option(help: ArgumentHelp("The certificate's private key (PEM).", valueName: "pem")) var key: String?
        @Flag(help: "Serve plain HTTP (only on a trusted network or behind a TLS proxy).") var insecureHTTP = false

        func run() async throws {
            var file = CommuneConfiguration()
            if let config {
                do { file = try CommuneConfiguration.load(path: config) } catch { throw ValidationError("\(error)") }
            }
            guard let given = data ?? file.data else { throw ValidationError("say where the data goes: --data DIR or [server] data in --config") }
            let data = try absoluteDataPath(given)
            let listen = listen ?? file.listen ?? "127.0.0.1:8080"
            let cert = cert ?? file.cert, key = key ?? file.key
            let insecure = insecureHTTP || (file.insecureHTTP ?? false)
            switch (cert, key, insecure) {
            case (nil, nil, false):
                throw ValidationError("give the server a certificate (--cert chain.pem --key key.pem), or pass --insecure-http to serve plain HTTP on a trusted network or behind a TLS proxy")
            case (.some, nil, _), (nil, .some, _):
                throw ValidationError("--cert and --key go together")
            case (.some, .some, true):
                throw ValidationError("--insecure-http and --cert exclude each other")
            default:
                break
            }
            let (host, port) = try parseListen(listen)

            let catalog = try await DataOptions(data: data).catalog()
            let logger = Logger(label: "commune")
            let router = Router(context: CommuneRequestContext.self)
            var tus = TusEndpoint.Configuration(data: data)
            if let m = file.maxUploadBytes { tus.maxUploadBytes = m }
            tus.deviceQuotaBytes = file.deviceQuotaBytes
            let endpoint = TusEndpoint(configuration: tus, catalog: catalog, logger: logger)
            endpoint.register(on: router)
            // Expired uploads (a box that never came back, a failed creation) give their quota back.
            let sweeper = Task {
                while !Task.isCancelled {
                    do { try await endpoint.sweepExpired() } catch { logger.warning("tus: sweeping expired uploads failed: \(error)") }
                    try? await Task.sleep(for: .seconds(60))
                }
            }
            defer { sweeper.cancel() }
            // The commune's own key countersigns each box's chain head; made on first start.
            let (communeKey, madeKey) = try DeviceKey.loadOrCreate(path: data + "/keys/commune.ed25519")
            try communeKey.writePublic(to: data + "/commune-key.pub")
            logger.notice("evidence: countersigning with the commune key", metadata: [
                "fingerprint": "\(communeKey.fingerprint)", "new": "\(madeKey)", "public_key": "\(communeKey.publicKeyBase64)"])
            ControlEndpoint(catalog: catalog, communeKey: communeKey, logger: logger).register(on: router)
            var desk = Desk.Configuration(secureCookies: cert != nil, evidenceRoot: data + "/evidence")
            if let zone = file.timeZone, let tz = TimeZone(identifier: zone) { desk.timeZone = tz }
            if let hours = file.sessionHours { desk.session.absoluteSeconds = Double(hours) * 3600 }
            desk.communeKey = communeKey
            desk.trustedProxies = Set(file.trustedProxies ?? [])
            Desk(catalog: catalog, configuration: desk, logger: logger).register(on: router)
            let configuration = ApplicationConfiguration(address: .hostname(host, port: port), serverName: "commune")
            var limits = ConnectionLimits()
            if let n = file.maxConnections { limits.maxConnections = n }
            if let n = file.maxConnectionsPerAddress { limits.maxPerAddress = n }
            if let n = file.idleSeconds { limits.idleSeconds = Int64(n) }
            limits.exempt = Set(file.trustedProxies ?? [])
            var nofile = rlimit()
            if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &nofile) == 0, nofile.rlim_cur != rlim_t.max {
                limits = limits.fitted(toDescriptorLimit: Int(clamping: nofile.rlim_cur))
            }
            logger.info("connection limits", metadata: ["max": "\(limits.maxConnections)", "per_address": "\(limits.maxPerAddress)",
                                                        "idle_seconds": "\(limits.idleSeconds)"])
            let counter = ConnectionCounter(limits: limits)
            let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [counter.handler(), HeaderOverflowHandler()],
                                                                     idleTimeout: .seconds(limits.idleSeconds)))
            if let cert, let key {
                let tls: TLSConfiguration
                do {
                    tls = TLSConfiguration.makeServerConfiguration(
                        certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                        privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                } catch {
                    throw ValidationError("cannot use \(cert) / \(key) as a PEM certificate and key: \(error)")
                }
                let app = Application(router: router, server: try .tls(http1, tlsConfiguration: tls),
                                      configuration: configuration, logger: logger)
                try await app.runService()
            } else {
                let app = Application(router: router, server: http1, configuration: configuration, logger: logger)
                try await app.runService()
            }
            sweeper.cancel()
            _ = await sweeper.result
            await catalog.close()
        }
    }

    struct RequestFootage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "request",
            abstract: "Ask a box for a time range; it uploads what it has at its next heartbeat.",
            discussion: """
                Times: RFC 3339 (2026-11-29T14:02:00+07:00), local "2026-11-29 14:02", "14:02" today, or -10m.
                Example:
                  commune request --data /srv/commune --device thaithuy-0042 --from "2026-11-29 14:02" --to "2026-11-29 14:09" --reason "accident QL37B"
                """)
        @OptionGroup var options: DataOptions
        @Option(help: "The device to ask.") var device: String
        @Option(help: "Start of the range.") var from: String
        func validate() throws {
            guard PlainName.isValid(device) else { throw ValidationError(PlainName.problem(device, what: "device id")) }
            if let camera, !PlainName.isValid(camera) { throw ValidationError(PlainName.problem(camera, what: "camera")) }
            if let reason, reason.count > 1000 { throw ValidationError("the reason is longer than 1000 characters: give a case number and a few words") }
        }
        @Option(help: "End of the range.") var to: String
        @Option(help: "Only this camera of the device (default: its camera).") var camera: String?
        @Option(help: "Why (kept with the clips).") var reason: String?
        @Flag(help: "Print the request as JSON.") var json = false

        func run() async throws {
            let now = Timestamp.now()
            let (start, end) = try timeRange(from, to, now: now)
            let made = try await options.withCatalog { catalog in
                do {
                    let made = try await catalog.addRequest(device: device, camera: camera, from: start, to: end, reason: reason, now: now)
                    try await catalog.audit(operator: nil, address: commandLine, action: "request",
                                            detail: "\(made.id) \(made.device) \(made.from)–\(made.to) \(reason ?? "")", now: now)
                    return made
                } catch let e as Catalog.RequestError {
                    throw ValidationError(e.description)
                }
            }
            if json {
                print(try jsonText(made))
            } else {
                print("Request \(made.id) for \(device): \(start.rfc3339) → \(end.rfc3339). The box picks it up at its next heartbeat; follow it with: commune requests --data \((try? options.directory()) ?? "DIR")")
            }
        }
    }

    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Footage requests, their state, what each box has of them, and their previews.",
            discussion: """
                A box sends a request's preview first: its keyframes as small pictures, so you can see what is in the range \
                long before the video arrives. Write them out to look at them, then narrow the request to the part that matters:
                  commune requests --data /srv/commune --preview req-1a2b3c --out /tmp/preview
                  commune narrow --data /srv/commune --request req-1a2b3c --from "2026-11-29 14:04" --to "2026-11-29 14:06"
                """)
        @OptionGroup var options: DataOptions
        @Option(help: "Only this device.") var device: String?
        @Option(help: "Write this request's preview pictures (JPEG, named by time) into --out.") var preview: String?
        @Option(help: "The folder for --preview (made if missing).") var out: String?
        @Flag(help: "Print JSON: an array of {id, device, from, to, state, coverage: [{from, to, status}], ...}.") var json = false

        func validate() throws {
            if preview != nil, out == nil { throw ValidationError("--preview needs --out DIR: the folder to write the pictures into") }
            if let preview, !PlainName.isValid(preview) { throw ValidationError(PlainName.problem(preview, what: "request id")) }
        }

        func run() async throws {
            let catalog = try await options.catalog(create: false)
            let requests = try await catalog.requests(device: device)
            var previews: [String: Catalog.PreviewFile] = [:]
            for r in requests { previews[r.id] = try await catalog.preview(request: r.id) }
            await catalog.close()
            if let preview, let out { try write(preview: preview, previews[preview], to: out); return }
            if json { print(try jsonText(requests)); return }
            if requests.isEmpty { print("No requests yet: commune request --device ID --from T --to T"); return }
            for r in requests {
                print("\(r.id)  \(r.device)  \(r.from.rfc3339) → \(r.to.rfc3339)  \(r.state.rawValue)\(r.reason.map { "  \"\(TerminalText.safe($0))\"" } ?? "")")
                if let e = r.error { print("    refused by the box: \(TerminalText.safe(e))") }
                for c in r.coverage {
                    print("    \(c.from.rfc3339) → \(c.to.rfc3339)  \(c.status.rawValue.replacingOccurrences(of: "_", with: " "))")
                }
                if let p = previews[r.id] { print("    preview: \(Self.describe(p))  (commune requests --preview \(r.id) --out DIR)") }
            }
        }

        static func describe(_ p: Catalog.PreviewFile) -> String {
            let scan = (try? p.scan()) ?? PreviewSheet.Scan()
            let times = scan.entries.map(\.at)
            let span = times.isEmpty ? "" : ", \(times.min()!.rfc3339) → \(times.max()!.rfc3339)"
            if let problem = scan.problem { return "\(scan.entries.count) pictures, then unreadable (\(problem))" }
            return p.complete ? "\(scan.entries.count) pictures\(span), complete" : "\(scan.entries.count) pictures so far\(span), arriving"
        }

        func write(preview id: String, _ file: Catalog.PreviewFile?, to out: String) throws {
            guard let file else { throw ValidationError("request \(id) has no preview yet (the box sends it at its next heartbeat, before the video)") }
            let scan = try file.scan()
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for (entry, name) in Catalog.PreviewFile.fileNames(request: id, scan.entries) {
                try Data(try file.jpeg(entry)).write(to: URL(fileURLWithPath: "\(out)/\(name)"))
            }
            print("\(scan.entries.count) pictures of \(id) written to \(out)\(file.complete ? "" : " (more are arriving)")")
        }
    }

    struct Narrow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Narrow a footage request to the part that matters: the box stops sending the rest.",
            discussion: """
                The new range must lie inside the request's. At its next heartbeat the box narrows its flag, releases the pins \
                it no longer needs and stops uploading what is outside; clips already received stay.
                  commune narrow --data /srv/commune --request req-1a2b3c --from "2026-11-29 14:04" --to "2026-11-29 14:06"
                """)
        @OptionGroup var options: DataOptions
        @Option(help: "The request (commune requests lists them).") var request: String
        @Option(help: "New start of the range.") var from: String
        @Option(help: "New end of the range.") var to: String

        func validate() throws {
            guard PlainName.isValid(request) else { throw ValidationError(PlainName.problem(request, what: "request id")) }
        }

        func run() async throws {
            let now = Timestamp.now()
            let (start, end) = try timeRange(from, to, now: now)
            let narrowed = try await options.withCatalog { catalog in
                do {
                    let before = try await catalog.requests(id: request).first
                    let r = try await catalog.narrow(request: request, from: start, to: end, now: now)
                    try await catalog.audit(operator: nil, address: commandLine, action: "request narrowed",
                                            detail: "\(request) \(before.map { "\($0.from.rfc3339) → \($0.to.rfc3339)" } ?? "") narrowed to \(start.rfc3339) → \(end.rfc3339)")
                    return r
                } catch let e as Catalog.NarrowError {
                    throw ValidationError(e.description)
                }
            }
            print("Request \(narrowed.id) now asks for \(narrowed.from.rfc3339) → \(narrowed.to.rfc3339). The box stops sending the rest at its next heartbeat.")
        }
    }

    struct Operators: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Officers: who signs in to the desk (the web page) and who uses the JSON API.",
            discussion: """
                A password is asked twice on a terminal (at least \(Desk.minPasswordCharacters) characters); without a terminal, or with
                --one-time, a one-time password is printed instead, and the desk asks for a new one at the first
                sign-in. --password-stdin reads it from standard input (scripts).
                Examples:
                  commune operators add nguyenvana --data /srv/commune
                  commune operators add truongcongan --chief --data /srv/commune
                  commune operators password nguyenvana --one-time --data /srv/commune
                """,
            subcommands: [Add.self, Password.self])

        struct PasswordSource: ParsableArguments {
            @Flag(help: "Print a one-time password instead of asking for one.") var oneTime = false
            @Flag(help: "Read the password from standard input (one line).") var passwordStdin = false

            /// The password to set, and whether it is one-time.
            func obtain() throws -> (password: String, oneTime: Bool) {
                if passwordStdin {
                    guard let line = readLine(strippingNewline: true), line.count >= Desk.minPasswordCharacters else {
                        throw ValidationError("--password-stdin: give a password of at least \(Desk.minPasswordCharacters) characters on one line")
                    }
                    try Self.checkUsable(line)
                    return (line, false)
                }
                if oneTime || isatty(STDIN_FILENO) == 0 { return (Self.oneTimePassword(), true) }
                let first = try Self.ask("Password (at least \(Desk.minPasswordCharacters) characters): ")
                guard first.count >= Desk.minPasswordCharacters else {
                    throw ValidationError("the password must have at least \(Desk.minPasswordCharacters) characters")
                }
                try Self.checkUsable(first)
                guard try Self.ask("The same again: ") == first else { throw ValidationError("the two passwords differ; nothing was changed") }
                return (first, false)
            }

            /// bcrypt reads a password up to a NUL and its first 72 bytes: a longer one would not count whole.
            static func checkUsable(_ p: String) throws {
                guard Desk.usablePassword(p) else {
                    throw ValidationError("the password may not contain a NUL character or be longer than \(Desk.maxPasswordBytes) bytes (\(p.utf8.count) given); nothing was changed")
                }
            }

            /// 12 characters from an alphabet without look-alikes (no 0/O, 1/l/I).
            static func oneTimePassword() -> String {
                let alphabet = Array("abcdefghjkmnpqrstuvwxyz23456789")
                var rng = SystemRandomNumberGenerator()
                return String((0..<12).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
            }

            /// Reads a line from the terminal with echo off.
            static func ask(_ prompt: String) throws -> String {
                print(prompt, terminator: "")
                fflush(nil)
                var saved = termios()
                tcgetattr(STDIN_FILENO, &saved)
                var quiet = saved
                quiet.c_lflag &= ~tcflag_t(ECHO)
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
                defer { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved); print("") }
                guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password given") }
                return line
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an operator: a desk password and an API token (each shown once).")
            @OptionGroup var options: DataOptions
            @Argument(help: "The operator's name (letters, digits, '-', '_', '.').") var name: String
            @Flag(help: "An officer in charge: may read and export the audit log.") var chief = false
            @OptionGroup var source: PasswordSource
            func run() async throws {
                guard PlainName.isValid(name) else { throw ValidationError(PlainName.problem(name, what: "operator name")) }
                let (password, oneTime) = try source.obtain()
                let hash = try await Desk.hashPassword(password)
                let token = try await options.withCatalog { catalog in
                    let token: String
                    do { token = try await catalog.addOperator(name: name, chief: chief) } catch {
                        throw ValidationError("operator \(name) already exists (commune operators password \(name) sets a new password)")
                    }
                    try await catalog.setPassword(operator: name, bcrypt: hash, oneTime: oneTime)
                    return token
                }
                print("Operator \(name) created\(chief ? " (in charge)" : "").")
                if oneTime { print("One-time password for the desk (a new one is asked at the first sign-in): \(password)") }
                print("API token (Authorization: Bearer TOKEN), not shown again:")
                print(token)
            }
        }

        struct Password: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Set an operator's desk password (signs out their sessions).")
            @OptionGroup var options: DataOptions
            @Argument(help: "The operator's name.") var name: String
            @OptionGroup var source: PasswordSource
            func run() async throws {
                let (password, oneTime) = try source.obtain()
                let hash = try await Desk.hashPassword(password)
                try await options.withCatalog { catalog in
                    guard try await catalog.setPassword(operator: name, bcrypt: hash, oneTime: oneTime) else {
                        throw ValidationError("there is no operator \(TerminalText.safe(name)) (commune operators add \(TerminalText.safe(name)))")
                    }
                    try await catalog.closeSessions(operator: name)
                    try await catalog.audit(operator: nil, address: commandLine, action: "password set by the server's administrator", detail: name)
                }
                print(oneTime ? "One-time password for \(name): \(password)" : "Password of \(name) set.")
            }
        }
    }

    struct Clips: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the clips that arrived whole and verified.")
        @OptionGroup var options: DataOptions
        @Option(help: "Only this device.") var device: String?
        @Option(help: "Only clips ending after this time.") var from: String?
        @Option(help: "Only clips starting before this time.") var to: String?
        @Flag(help: "Print JSON: an array of {path, device, camera, start, end, bytes, sha256, ...}.") var json = false
        func run() async throws {
            let catalog = try await options.catalog(create: false)
            let now = Timestamp.now()
            let start: Timestamp?, end: Timestamp?
            do {
                start = try from.map { try TimeExpression.parse($0, now: now) }
                end = try to.map { try TimeExpression.parse($0, now: now) }
            } catch {
                throw ValidationError("\(error)")
            }
            let clips = try await catalog.clips(device: device).filter { c in
                (start.map { c.end > $0 } ?? true) && (end.map { c.start < $0 } ?? true)
            }
            await catalog.close()
            if json {
                print(try jsonText(clips))
            } else if clips.isEmpty {
                print("No clips yet.")
            } else {
                for c in clips {
                    let proof = c.proof == "verified" ? "verified" : "\(c.proof.uppercased()): \(c.proofDetail ?? "")"
                    print(TerminalText.safe("\(c.device)  \(c.camera)  \(c.start.rfc3339) → \(c.end.rfc3339)  \(c.bytes) B  \(proof)  \(c.path)"))
                }
            }
        }
    }
}

/// `--from` and `--to` as times (the forms `TimeExpression` reads), or a usage error saying why.
func timeRange(_ from: String, _ to: String, now: Timestamp) throws -> (Timestamp, Timestamp) {
    do {
        return (try TimeExpression.parse(from, now: now), try TimeExpression.parse(to, now: now))
    } catch {
        throw ValidationError(error.description)
    }
}

func jsonText<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}

/// `path` made absolute against the working directory (a relative --data used to file uploads
/// under "/" and answer every one 500), with "." and ".." resolved.
func absoluteDataPath(_ path: String) throws -> String {
    guard !path.isEmpty else { throw ValidationError("--data is empty: give the server's data directory") }
    let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var parts: [Substring] = []
    for part in joined.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { _ = parts.popLast(); continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}

/// "ADDRESS:PORT", "[::1]:PORT": the port must be 1–65535 (99999 silently listened on a
/// random port).
func parseListen(_ listen: String) throws -> (String, Int) {
    let usage = "--listen is ADDRESS:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8080 or [::1]:8080"
    guard let colon = listen.lastIndex(of: ":") else { throw ValidationError(usage) }
    var host = String(listen[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    let portText = listen[listen.index(after: colon)...]
    guard !host.isEmpty, !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
          portText.count <= 5, let port = Int(portText), (1...65535).contains(port) else {
        throw ValidationError("\(listen): \(usage)")
    }
    return (host, port)
}
