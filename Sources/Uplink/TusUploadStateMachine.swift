import Ring
import Wire

/// One file's tus 1.0.0 upload as a state machine that returns actions and takes responses, with
/// no I/O (after swift-nio's `*StateMachine`s): the uplink performs each `Action` and feeds the
/// outcome back. Everything it needs to resume after a reboot is in `Progress`, which the uplink
/// keeps in the index.
///
/// Rules (issue 3): resume by HEAD after any failure; 409 → re-read the offset; 460 → resend
/// the chunk; 404/410/expired → create again; 5xx and transport errors → capped exponential
/// backoff with jitter, then HEAD; other 4xx → stop and say why. The chunk size adapts to the
/// link between `minimumChunk` and `maximumChunk`, aiming at `targetChunkSeconds` per chunk (a
/// round trip idles the link between chunks, so they should be long), and halves after a cut-off
/// PATCH only when the server kept none of it (servers that keep partial bodies lose nothing).
public struct TusUploadStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var minimumChunk = 64 << 10
        public var maximumChunk = 4 << 20
        public var initialChunk = 256 << 10
        /// Chunks under half this grow, over twice this shrink.
        public var targetChunkSeconds = 12.0
        public var backoffInitial = 1.0
        public var backoffMaximum = 60.0
        /// No answer at all (link down) is retried at least this often: the retry (a HEAD) is
        /// itself the cheap probe, so uploading resumes within seconds of the link returning.
        public var networkRetryMaximum = 2.0
        /// The server has creation-with-upload: the first chunk rides in the POST (one round trip
        /// less per file, and footage starts moving at once).
        public var creationWithUpload = false
        /// At most this much rides in the POST: if the link drops mid-POST the answer (with the
        /// upload's URL) is lost and the box must create the upload again, so those bytes go twice.
        public var creationChunkLimit = 64 << 10
        /// Give up (and say so) after this many failures in a row without progress.
        public var maximumAttemptsWithoutProgress = 50

        public init() {}
    }

    /// What survives a reboot: the ring keeps it in the index.
    public typealias Progress = Ring.UploadState

    public enum Action: Sendable, Equatable {
        /// POST to the collection URL with Upload-Length and Upload-Metadata, and the file's first
        /// `firstChunk` bytes in the body when the server has creation-with-upload (0: none).
        case create(length: Int64, metadata: String, firstChunk: Int, checksum: ChecksumAlgorithm?)
        /// HEAD the upload URL to learn the server's offset.
        case head(url: String)
        /// PATCH `length` bytes of the file from `offset`, with a checksum when the server takes one.
        case patch(url: String, offset: Int64, length: Int, checksum: ChecksumAlgorithm?)
        /// Wait before trying again.
        case wait(seconds: Double)
        /// The server has every byte.
        case done(url: String)
        /// Trying again now cannot help; `reason` says what a person must change, `kind` what
        /// the queue does with the file (wait its turn, or check it for damage).
        case failed(reason: String, kind: FailureKind)
    }

    /// Why an upload stopped, as a kind the queue acts on (never matched as text).
    public enum FailureKind: String, Sendable, Equatable {
        /// No answer, timeouts, 5xx past every retry: wait (backing off) and try again.
        case unavailable
        /// The server refused the token (401/403): nothing goes until the config is fixed.
        case unauthenticated
        /// The TLS handshake failed (certificate, CA, clock): retried only after a long wait.
        case tls
        /// The server refuses this upload for good (413, a protocol it does not speak).
        case refused
        /// The server refused the whole file as corrupt more than once: check it on the card.
        case dataLoss = "data_loss"
    }

    public enum ChecksumAlgorithm: String, Sendable, Equatable { case sha256, sha1 }

    public enum Outcome: Sendable, Equatable {
        /// An HTTP answer: status and the headers that matter (names compared case-insensitively).
        case response(status: Int, headers: [String: String], seconds: Double)
        /// No answer: connection refused or reset, timeout, TLS failure.
        case transportError(String, seconds: Double)
    }

    public let configuration: Configuration
    public let length: Int64
    public let metadata: String
    public private(set) var progress: Progress
    public private(set) var chunk: Int
    /// Bytes sent more than once (for the bench's "re-sent" figure).
    public private(set) var resentBytes: Int64 = 0
    private var highestSent: Int64 = 0
    private var needsHead: Bool
    private var pendingWait: Double?
    private var backoffStep = 0
    private var lastAction: Action?
    /// The offset of a PATCH that was cut off, until a HEAD says how much of it the server kept.
    private var cutOffAt: Int64?
    private var checksum: ChecksumAlgorithm?
    private var finished: Action?
    /// How often the server refused the whole file (its final chunk answered 404/410).
    private var wholeFileRejections = 0

    /// - Parameters:
    ///   - progress: from the index after a reboot (url and offset), or fresh.
    ///   - checksum: what the server advertised in `Tus-Checksum-Algorithm` (sha256 preferred).
    public init(length: Int64, metadata: UploadMetadata, progress: Progress = Progress(),
                checksum: ChecksumAlgorithm? = nil, configuration: Configuration = Configuration()) {
        self.length = length
        self.metadata = metadata.encoded
        self.progress = progress
        self.configuration = configuration
        self.chunk = configuration.initialChunk
        self.checksum = checksum
        self.highestSent = progress.offset
        // After a reboot the offset we remember may be behind or ahead of the server's: ask.
        self.needsHead = progress.url != nil
    }

    /// Picks the checksum algorithm from a `Tus-Checksum-Algorithm` header value.
    public static func checksum(advertised: String?) -> ChecksumAlgorithm? {
        let names = (advertised ?? "").lowercased().split(separator: ",").map { $0.filter { !$0.isWhitespace } }
        if names.contains("sha256") { return .sha256 }
        if names.contains("sha1") { return .sha1 }
        return nil
    }

    /// What to do now.
    public mutating func next() -> Action {
        if let finished { return finished }
        if let w = pendingWait {
            pendingWait = nil
            return .wait(seconds: w)
        }
        guard let url = progress.url else {
            let first = configuration.creationWithUpload ? Int(min(Int64(min(chunk, configuration.creationChunkLimit)), length)) : 0
            return .create(length: length, metadata: metadata, firstChunk: first, checksum: first > 0 ? checksum : nil)
        }
        if needsHead { return .head(url: url) }
        if progress.offset >= length {
            finished = .done(url: url)
            return finished!
        }
        let n = Int(min(Int64(chunk), length - progress.offset))
        return .patch(url: url, offset: progress.offset, length: n, checksum: checksum)
    }

    /// Feeds back what happened when `action` was performed. `random` in 0..<1 jitters backoff.
    public mutating func handle(_ action: Action, _ outcome: Outcome, random: Double = 0.5) {
        lastAction = action
        switch outcome {
        case .transportError(let text, _):
            fail("network: \(text)", random: random, shrink: action.isPatch, cap: configuration.networkRetryMaximum)
        case .response(let status, let rawHeaders, let seconds):
            let headers = Dictionary(rawHeaders.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
            handle(action, status: status, headers: headers, seconds: seconds, random: random)
        }
    }

    private mutating func handle(_ action: Action, status: Int, headers: [String: String], seconds: Double, random: Double) {
        let offsetHeader = headers[Tus.Header.uploadOffset.lowercased()].flatMap { Int64($0) }
        switch (action, status) {
        case (.create, 201):
            guard let location = headers["location"], !location.isEmpty else {
                fail("the server created an upload but sent no Location", random: random, shrink: false)
                return
            }
            progress.url = location
            progress.offset = 0
            needsHead = false
            if case .create(_, _, let first, _) = action, first > 0 {
                // creation-with-upload: the server says how much of the body it took.
                if let taken = offsetHeader, taken >= 0, taken <= Int64(first) {
                    progress.offset = taken
                    highestSent = max(highestSent, taken)
                    if taken > 0 { madeProgress() }
                } else {
                    needsHead = true
                }
            }
            // A creation alone is not progress: a server that creates and then refuses every
            // PATCH must still meet the backoff and the attempt limit.
        case (.head, 200), (.head, 204):
            guard let offset = offsetHeader, offset >= 0, offset <= length else {
                // A server that does not know a sane offset for our upload: start over there.
                startOver("the server reported an impossible offset (\(offsetHeader.map(String.init) ?? "none"))")
                return
            }
            if let expires = headers[Tus.Header.uploadExpires.lowercased()], expires.isEmpty == false, offset < length,
               Self.hasExpired(expires) {
                startOver("the upload expired on the server")
                return
            }
            if let cut = cutOffAt, offset <= cut {
                // The server kept nothing of the cut-off chunk: smaller chunks lose less next time.
                chunk = max(configuration.minimumChunk, chunk / 2)
            }
            cutOffAt = nil
            progress.offset = offset
            needsHead = false
        case (.patch(_, let offset, let n, _), 204):
            guard let newOffset = offsetHeader, newOffset > offset, newOffset <= offset + Int64(n) else {
                // The server lies or lost data: ask it where it really is.
                progress.lastError = "the server answered a PATCH with offset \(offsetHeader.map(String.init) ?? "none"); re-reading it"
                needsHead = true
                return
            }
            if offset < highestSent { resentBytes += min(highestSent, newOffset) - offset }
            highestSent = max(highestSent, newOffset)
            progress.offset = newOffset
            adapt(seconds: seconds, bytes: Int(newOffset - offset))
            madeProgress()
        case (.patch, 409):
            // Offsets disagree: the server's HEAD is the truth.
            needsHead = true
        case (.patch, Tus.checksumMismatch):
            // The chunk was damaged on the way: send it again (same offset).
            progress.lastError = "chunk checksum mismatch at \(progress.offset); resending"
            progress.attempts += 1
            if progress.attempts > configuration.maximumAttemptsWithoutProgress {
                finished = .failed(reason: "every chunk arrives damaged (checksum mismatch): the link or a proxy corrupts data", kind: .unavailable)
            }
        case (.patch(_, let offset, let n, _), 410) where offset + Int64(n) >= length:
            // The last chunk was answered "gone": the server checked the whole file against its
            // SHA-256 and discarded it (the commune does; 404 is only "unknown upload").
            wholeFileRejections += 1
            if wholeFileRejections >= 2 {
                finished = .failed(reason: "the server refused the whole file \(wholeFileRejections) times (HTTP \(status)): it does not match its SHA-256", kind: .dataLoss)
                return
            }
            startOver("the server refused the whole file (HTTP \(status)); sending it once more", random: random)
        case (.head, 404), (.head, 410), (.patch, 404), (.patch, 410):
            startOver(status == 410 ? "the upload expired on the server" : "the server no longer knows the upload", random: random)
        case (_, 401), (_, 403):
            finished = .failed(reason: "the server refused the device token (HTTP \(status)): check server.token in junction.toml", kind: .unauthenticated)
        case (.create, 413):
            finished = .failed(reason: "the server refuses files this large (HTTP 413): raise its upload limit", kind: .refused)
        case (_, 500...599), (_, 408), (_, 429):
            fail("the server answered HTTP \(status)", random: random, shrink: action.isPatch)
        default:
            finished = .failed(reason: "unexpected HTTP \(status) to \(action.name): the server may not speak tus 1.0.0 with creation", kind: .refused)
        }
    }

    private mutating func madeProgress() {
        progress.attempts = 0
        progress.lastError = nil
        backoffStep = 0
    }

    /// The server lost or refused the upload: create it again, after a backoff, and counted as
    /// a failure (a server answering 404 to every PATCH got 1 018 of them in 7.7 s).
    private mutating func startOver(_ why: String, random: Double = 0.5) {
        progress = Progress(url: nil, offset: 0, attempts: progress.attempts, lastError: why)
        needsHead = false
        fail(why, random: random, shrink: false)
    }

    /// A failure: back off (capped, jittered), then HEAD before sending more.
    private mutating func fail(_ text: String, random: Double, shrink: Bool, cap: Double? = nil) {
        progress.lastError = text
        progress.attempts += 1
        if progress.attempts > configuration.maximumAttemptsWithoutProgress {
            finished = .failed(reason: "gave up after \(progress.attempts - 1) failures in a row; last: \(text)", kind: .unavailable)
            return
        }
        let step = min(cap ?? configuration.backoffMaximum, configuration.backoffInitial * Double(1 << min(backoffStep, 16)))
        backoffStep += 1
        pendingWait = step * (0.5 + 0.5 * random)
        if progress.url != nil { needsHead = true }
        if shrink, case .patch(_, let offset, _, _) = lastAction { cutOffAt = offset }
    }

    /// Grows the chunk on a fast link, shrinks it on a slow one.
    private mutating func adapt(seconds: Double, bytes: Int) {
        guard bytes >= chunk / 2 else { return }  // a short last chunk says nothing
        if seconds < configuration.targetChunkSeconds / 2 {
            chunk = min(configuration.maximumChunk, chunk * 2)
        } else if seconds > configuration.targetChunkSeconds * 2 {
            chunk = max(configuration.minimumChunk, chunk / 2)
        }
    }

    /// Whether an RFC 9110 date (`Upload-Expires`) is in the past. Unparseable dates are not.
    static func hasExpired(_ value: String, now: Double = Double(Timestamp.nowSeconds())) -> Bool {
        guard let t = HTTPDate.parse(value) else { return false }
        return t < now
    }
}

extension TusUploadStateMachine.Action {
    var isPatch: Bool { if case .patch = self { true } else { false } }
    var name: String {
        switch self {
        case .create: "POST"
        case .head: "HEAD"
        case .patch: "PATCH"
        case .wait: "wait"
        case .done: "done"
        case .failed: "failed"
        }
    }
}
