/// Why an update was refused or failed, each with what to do. Kinds, not text: the commune
/// and `junction status` show `reason`, tests and the rollout match on the case.
public enum UpdateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a Junction update bundle, or its header breaks a bound of the format.
    case malformed(String)
    /// Shorter than its manifest says (a download cut off, a card that lost the tail).
    case truncated(expected: Int64, got: Int64)
    /// Signed by no key in the box's keyring (re-signed, or a test bundle on a real box).
    case untrusted(String)
    /// Built for another processor.
    case wrongArchitecture(bundle: String, box: String)
    /// Below the lowest version the box may run (a release it installed raised the floor).
    case belowMinimum(version: ReleaseVersion, minimum: ReleaseVersion)
    /// The version already failed on this box; install it only when told (`--retry-failed`).
    case failedBefore(ReleaseVersion)
    /// The same version as the one running: nothing to do unless forced.
    case alreadyRunning(ReleaseVersion)
    /// A block or a boot file did not match its hash (a damaged download or slot).
    case damaged(String)
    /// The slot or the boot partition cannot hold or take the release.
    case slot(String)
    /// Reading or writing failed (errno's words).
    case io(String)

    public var description: String {
        switch self {
        case .malformed(let why): "not a valid update bundle: \(why)"
        case .truncated(let e, let g): "the bundle is cut short (\(g) of \(e) bytes): download it again"
        case .untrusted(let why): "the bundle is not signed by a release key this box trusts (\(why)): use a bundle packed (junction update pack) with the project's release key"
        case .wrongArchitecture(let b, let box): "the bundle is for \(b) and this box is \(box): pack one with `junction update pack --arch \(box)`"
        case .belowMinimum(let v, let m): "version \(v) is below this box's minimum \(m) (a later release raised it): install \(m) or newer"
        case .failedBefore(let v): "version \(v) already failed on this box; to try it again, say so (--retry-failed)"
        case .alreadyRunning(let v): "version \(v) is already running"
        case .damaged(let why): "the update is damaged: \(why); nothing was made bootable"
        case .slot(let why): "the slot cannot take the update: \(why)"
        case .io(let why): why
        }
    }

    /// A short stable word for the heartbeat and the desk.
    public var kind: String {
        switch self {
        case .malformed: "malformed"
        case .truncated: "truncated"
        case .untrusted: "untrusted"
        case .wrongArchitecture: "wrong_architecture"
        case .belowMinimum: "below_minimum"
        case .failedBefore: "failed_before"
        case .alreadyRunning: "already_running"
        case .damaged: "damaged"
        case .slot: "slot"
        case .io: "io"
        }
    }
}
