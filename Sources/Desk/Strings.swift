/// Every word the desk shows, one catalog per language. Vietnamese is the default (the officers'
/// language); English is the second. A key missing from a catalog fails `DeskTests`.
public enum Language: String, Sendable, CaseIterable {
    case vi, en

    /// The language a browser asks for (`Accept-Language`), Vietnamese unless English comes first.
    public static func preferred(acceptLanguage: String?) -> Language {
        guard let header = acceptLanguage else { return .vi }
        // "en-US,en;q=0.9,vi;q=0.8": the first listed of ours wins (browsers list by preference).
        for part in header.split(separator: ",").prefix(20) {
            let tag = part.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            if tag.hasPrefix("vi") { return .vi }
            if tag.hasPrefix("en") { return .en }
        }
        return .vi
    }
}

enum Key: String, CaseIterable {
    case appName, signInTitle, operatorName, password, signIn, signOut, wrongPassword, tooManyAttempts
    case sessionEnded, boxes, language, otherLanguage, newPassword, repeatPassword, currentPassword, changePassword
    case oneTimePasswordNotice, passwordsDiffer, passwordTooShort, passwordChanged, formExpired
    case box, lastSeen, recording, camera, clock, footageSpan, cardFree, pinned, queued, uploading, alarms, noBoxes
    case alarmSilent, alarmCameraDown, alarmCardFull, alarmClock, alarmDamaged, alarmNeverSeen
    case stateRecording, stateNotRecording, clockSynced, clockNotSynced, never, ago, noAlarm, segmentsUnit
    case signedInAs, notFound
    case requests, newRequest, from, to, reason, reasonHint, dateHint, send, requestState, requested, coverage
    case stateWaiting, stateAccepted, stateComplete, stateRefused, covUploaded, covPending, covNotRecorded, covEvicted
    case badDate, rangeEmpty, rangeTooLong, chooseBox, noRequests, arrived, timeLeft, unknownRate, requestSent, refreshing
    case audit, auditIntro, auditOnlyChief, when, who, address, action, detail, exportCSV
}

enum Strings {
    static func text(_ key: Key, _ language: Language) -> String {
        (language == .vi ? vi : en)[key] ?? en[key] ?? key.rawValue
    }

    static let vi: [Key: String] = [
        .appName: "Junction — Bàn trực công an xã",
        .signInTitle: "Đăng nhập",
        .operatorName: "Tên cán bộ",
        .password: "Mật khẩu",
        .signIn: "Đăng nhập",
        .signOut: "Đăng xuất",
        .wrongPassword: "Tên hoặc mật khẩu không đúng.",
        .tooManyAttempts: "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 15 phút.",
        .sessionEnded: "Phiên làm việc đã hết hạn. Vui lòng đăng nhập lại.",
        .boxes: "Các hộp camera",
        .language: "Ngôn ngữ",
        .otherLanguage: "English",
        .newPassword: "Mật khẩu mới",
        .repeatPassword: "Nhập lại mật khẩu mới",
        .currentPassword: "Mật khẩu hiện tại",
        .changePassword: "Đổi mật khẩu",
        .oneTimePasswordNotice: "Bạn đang dùng mật khẩu một lần. Hãy đặt mật khẩu của riêng bạn (ít nhất 10 ký tự).",
        .passwordsDiffer: "Hai mật khẩu mới không giống nhau.",
        .passwordTooShort: "Mật khẩu mới phải có ít nhất 10 ký tự.",
        .passwordChanged: "Đã đổi mật khẩu.",
        .formExpired: "Biểu mẫu đã hết hạn. Vui lòng tải lại trang và thử lại.",
        .box: "Hộp",
        .lastSeen: "Liên lạc lần cuối",
        .recording: "Ghi hình",
        .camera: "Camera",
        .clock: "Đồng hồ",
        .footageSpan: "Lưu trữ từ",
        .cardFree: "Thẻ nhớ còn trống",
        .pinned: "Đã giữ lại",
        .queued: "Chờ gửi",
        .uploading: "Tốc độ gửi",
        .alarms: "Cảnh báo",
        .noBoxes: "Chưa có hộp nào được đăng ký (commune devices add TÊN).",
        .alarmSilent: "Mất liên lạc",
        .alarmCameraDown: "Không ghi hình",
        .alarmCardFull: "Thẻ nhớ sắp đầy",
        .alarmClock: "Đồng hồ chưa đồng bộ",
        .alarmDamaged: "Đoạn phim hỏng trên thẻ",
        .alarmNeverSeen: "Chưa từng liên lạc",
        .stateRecording: "Đang ghi",
        .stateNotRecording: "Không ghi",
        .clockSynced: "Đã đồng bộ",
        .clockNotSynced: "Chưa đồng bộ",
        .never: "Chưa bao giờ",
        .ago: "trước",
        .noAlarm: "Bình thường",
        .segmentsUnit: "đoạn",
        .signedInAs: "Đăng nhập với tên",
        .notFound: "Không tìm thấy trang này.",
        .requests: "Yêu cầu trích xuất",
        .newRequest: "Yêu cầu trích xuất mới",
        .from: "Từ",
        .to: "Đến",
        .reason: "Lý do",
        .reasonHint: "Số vụ việc và vài chữ, ví dụ: VV-2026-118 tai nạn QL37B",
        .dateHint: "dd/mm/yyyy HH:mm",
        .send: "Gửi yêu cầu",
        .requestState: "Trạng thái",
        .requested: "Lúc yêu cầu",
        .coverage: "Tiến độ",
        .stateWaiting: "Chờ hộp nhận",
        .stateAccepted: "Đang gửi về",
        .stateComplete: "Hoàn tất",
        .stateRefused: "Hộp từ chối",
        .covUploaded: "Đã về máy chủ",
        .covPending: "Còn trên hộp",
        .covNotRecorded: "Không ghi hình",
        .covEvicted: "Đã bị ghi đè",
        .badDate: "Ngày giờ không đúng dạng dd/mm/yyyy HH:mm, ví dụ 29/11/2026 14:02.",
        .rangeEmpty: "Thời điểm \"Đến\" phải sau thời điểm \"Từ\".",
        .rangeTooLong: "Khoảng thời gian dài hơn 31 ngày: hãy yêu cầu phần cần thiết.",
        .chooseBox: "Hãy chọn một hộp camera.",
        .noRequests: "Chưa có yêu cầu nào.",
        .arrived: "đã về",
        .timeLeft: "còn khoảng",
        .unknownRate: "chưa rõ thời gian còn lại",
        .requestSent: "Đã gửi yêu cầu. Hộp sẽ nhận ở lần liên lạc tới.",
        .refreshing: "Trang tự cập nhật mỗi 5 giây.",
        .audit: "Nhật ký truy cập",
        .auditIntro: "Mọi lần đăng nhập, yêu cầu, xem và tải về: ai, làm gì, lúc nào, từ địa chỉ nào. Mới nhất ở trên.",
        .auditOnlyChief: "Chỉ cán bộ phụ trách mới xem được nhật ký truy cập.",
        .when: "Thời gian",
        .who: "Cán bộ",
        .address: "Địa chỉ",
        .action: "Thao tác",
        .detail: "Chi tiết",
        .exportCSV: "Tải về (CSV)",
    ]

    static let en: [Key: String] = [
        .appName: "Junction — Commune police desk",
        .signInTitle: "Sign in",
        .operatorName: "Operator name",
        .password: "Password",
        .signIn: "Sign in",
        .signOut: "Sign out",
        .wrongPassword: "Wrong name or password.",
        .tooManyAttempts: "Too many failed sign-ins. Try again in 15 minutes.",
        .sessionEnded: "Your session has ended. Please sign in again.",
        .boxes: "Camera boxes",
        .language: "Language",
        .otherLanguage: "Tiếng Việt",
        .newPassword: "New password",
        .repeatPassword: "Repeat the new password",
        .currentPassword: "Current password",
        .changePassword: "Change password",
        .oneTimePasswordNotice: "You signed in with a one-time password. Set a password of your own (at least 10 characters).",
        .passwordsDiffer: "The two new passwords differ.",
        .passwordTooShort: "The new password must have at least 10 characters.",
        .passwordChanged: "Password changed.",
        .formExpired: "This form has expired. Reload the page and try again.",
        .box: "Box",
        .lastSeen: "Last seen",
        .recording: "Recording",
        .camera: "Camera",
        .clock: "Clock",
        .footageSpan: "Footage since",
        .cardFree: "Card free",
        .pinned: "Pinned",
        .queued: "Queued",
        .uploading: "Upload rate",
        .alarms: "Alarms",
        .noBoxes: "No box is registered yet (commune devices add NAME).",
        .alarmSilent: "Silent",
        .alarmCameraDown: "Not recording",
        .alarmCardFull: "Card nearly full",
        .alarmClock: "Clock not synchronised",
        .alarmDamaged: "Damaged footage on the card",
        .alarmNeverSeen: "Never heard from",
        .stateRecording: "Recording",
        .stateNotRecording: "Not recording",
        .clockSynced: "Synchronised",
        .clockNotSynced: "Not synchronised",
        .never: "Never",
        .ago: "ago",
        .noAlarm: "OK",
        .segmentsUnit: "segments",
        .signedInAs: "Signed in as",
        .notFound: "There is no such page.",
        .requests: "Footage requests",
        .newRequest: "New footage request",
        .from: "From",
        .to: "To",
        .reason: "Reason",
        .reasonHint: "A case number and a few words, e.g. VV-2026-118 accident QL37B",
        .dateHint: "dd/mm/yyyy HH:mm",
        .send: "Send request",
        .requestState: "State",
        .requested: "Requested",
        .coverage: "Progress",
        .stateWaiting: "Waiting for the box",
        .stateAccepted: "Arriving",
        .stateComplete: "Complete",
        .stateRefused: "Refused by the box",
        .covUploaded: "At the server",
        .covPending: "Still on the box",
        .covNotRecorded: "Not recorded",
        .covEvicted: "Overwritten",
        .badDate: "The date and time must be dd/mm/yyyy HH:mm, e.g. 29/11/2026 14:02.",
        .rangeEmpty: "\"To\" must be after \"From\".",
        .rangeTooLong: "The range is longer than 31 days: ask for the part that matters.",
        .chooseBox: "Choose a camera box.",
        .noRequests: "No request yet.",
        .arrived: "arrived",
        .timeLeft: "about",
        .unknownRate: "time left not known yet",
        .requestSent: "Request sent. The box takes it at its next heartbeat.",
        .refreshing: "This page refreshes itself every 5 seconds.",
        .audit: "Audit log",
        .auditIntro: "Every sign-in, request, view and download: who, what, when, from which address. Newest first.",
        .auditOnlyChief: "Only an officer in charge may read the audit log.",
        .when: "When",
        .who: "Officer",
        .address: "Address",
        .action: "Action",
        .detail: "Detail",
        .exportCSV: "Download (CSV)",
    ]
}
