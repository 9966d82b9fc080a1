#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A value read from a TOML file, with the line it stood on.
public struct TOMLValue: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case bool(Bool)
        case array([Kind])
    }
    public var kind: Kind
    public var line: Int

    public var typeName: String { kind.typeName }
}

extension TOMLValue.Kind {
    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a number"
        case .bool: "true or false"
        case .array: "a list"
        }
    }
}

/// A parsed TOML document: dotted key ("storage.max_bytes") → value, in file order.
///
/// Junction's config needs tables, strings, integers, floats, booleans and arrays of them, and
/// every error must name its line. This reader covers exactly that part of TOML 1.0 and says
/// plainly when a file uses something else (inline tables, dates, multi-line strings). Why not
/// TOMLKit: it imports full Foundation (+~45 MB with ICU in a static box binary) and does not
/// report the line of a value; see README, design notes.
public struct TOMLDocument: Sendable {
    public private(set) var entries: [(key: String, value: TOMLValue)] = []
    public private(set) var tables: [String: Int] = [:]
    private var index: [String: Int] = [:]

    /// Bounds (README, "Limits"): what a config can need, many times over. Past them the reader
    /// stops with an error naming the line instead of working for seconds or exhausting the stack.
    public enum Limits {
        /// Keys and tables in one file.
        public static let entries = 1000
        /// Lists inside lists.
        public static let nesting = 8
        /// Lines one list may span.
        public static let listLines = 1000
    }

    public subscript(key: String) -> TOMLValue? {
        index[key].map { entries[$0].value }
    }

    public init(parsing text: String) throws(TOMLSyntaxError) {
        var table = ""
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so a split on "\n" alone would see a Windows file as one line.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })[...]
        while let raw = lines.popFirst() {
            lineNumber += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            var scanner = LineScanner(text: line, line: lineNumber)
            scanner.skipSpaces()
            if scanner.atEndOrComment { continue }
            if scanner.peek == "[" {
                scanner.advance()
                if scanner.peek == "[" {
                    throw TOMLSyntaxError(line: lineNumber, message: "arrays of tables ([[...]]) are not used in this file")
                }
                let name = try scanner.readKeyPath()
                scanner.skipSpaces()
                guard scanner.peek == "]" else {
                    throw TOMLSyntaxError(line: lineNumber, message: "a table header must end with ']'")
                }
                scanner.advance()
                try scanner.expectLineEnd()
                guard tables.count + entries.count < Limits.entries else {
                    throw TOMLSyntaxError(line: lineNumber, message: "more than \(Limits.entries) keys and tables: this is not a config file")
                }
                if let earlier = tables[name] {
                    throw TOMLSyntaxError(line: lineNumber, message: "table [\(name)] is already defined on line \(earlier)")
                }
                tables[name] = lineNumber
                table = name
                continue
            }
            let key = try scanner.readKeyPath()
            scanner.skipSpaces()
            guard scanner.peek == "=" else {
                throw TOMLSyntaxError(line: lineNumber, message: "expected '=' after key '\(key)'")
            }
            scanner.advance()
            scanner.skipSpaces()
            // Arrays may span lines: gather until the brackets balance.
            if scanner.peek == "[" {
                var joined = String(scanner.rest)
                var startLine = lineNumber
                var balance = LineScanner.BracketBalance()
                balance.feed(joined)
                while !balance.balanced {
                    guard lineNumber - startLine < Limits.listLines else {
                        throw TOMLSyntaxError(line: startLine, message: "the list for '\(key)' spans more than \(Limits.listLines) lines: this is not a config file")
                    }
                    guard let next = lines.popFirst() else {
                        throw TOMLSyntaxError(line: startLine, message: "the list for '\(key)' is never closed with ']'")
                    }
                    lineNumber += 1
                    joined += "\n" + next
                    balance.feed("\n" + next)
                }
                var arrayScanner = LineScanner(text: Substring(joined), line: startLine)
                let kind = try arrayScanner.readValue()
                try arrayScanner.expectLineEnd(allowNewlines: true)
                startLine = arrayScanner.line
                try insert(table: table, key: key, value: TOMLValue(kind: kind, line: lineNumber))
                continue
            }
            let kind = try scanner.readValue()
            try scanner.expectLineEnd()
            try insert(table: table, key: key, value: TOMLValue(kind: kind, line: lineNumber))
        }
    }

    /// This document with `other`'s keys set over it (a key in both takes `other`'s value, at
    /// its line in `other`); the commune's settings over the installer's file.
    public func overlaid(by other: TOMLDocument) -> TOMLDocument {
        var merged = self
        for (key, value) in other.entries {
            if let i = merged.index[key] {
                merged.entries[i].value = value
            } else {
                merged.index[key] = merged.entries.count
                merged.entries.append((key, value))
            }
        }
        for (table, line) in other.tables where merged.tables[table] == nil { merged.tables[table] = line }
        return merged
    }

    private mutating func insert(table: String, key: String, value: TOMLValue) throws(TOMLSyntaxError) {
        let full = table.isEmpty ? key : table + "." + key
        if let earlier = self[full] {
            throw TOMLSyntaxError(line: value.line, message: "'\(full)' is already set on line \(earlier.line)")
        }
        guard tables.count + entries.count < Limits.entries else {
            throw TOMLSyntaxError(line: value.line, message: "more than \(Limits.entries) keys and tables: this is not a config file")
        }
        index[full] = entries.count
        entries.append((full, value))
    }
}

/// A file that is not valid TOML (or uses TOML this reader does not take).
public struct TOMLSyntaxError: Error, Sendable, Equatable {
    public var line: Int
    public var message: String
}

struct LineScanner {
    var chars: [Character]
    var index = 0
    var line: Int

    init(text: Substring, line: Int) {
        self.chars = Array(text)
        self.line = line
    }

    var peek: Character? { index < chars.count ? chars[index] : nil }
    var rest: Substring { Substring(String(chars[index...])) }
    var atEndOrComment: Bool { peek == nil || peek == "#" }
    mutating func advance() {
        if peek == "\n" { line += 1 }
        index += 1
    }

    mutating func skipSpaces(newlines: Bool = false) {
        while let c = peek {
            if c == " " || c == "\t" || (newlines && (c == "\n" || c == "\r")) {
                advance()
            } else if newlines && c == "#" {
                while let d = peek, d != "\n" { _ = d; advance() }
            } else {
                return
            }
        }
    }

    mutating func expectLineEnd(allowNewlines: Bool = false) throws(TOMLSyntaxError) {
        skipSpaces(newlines: allowNewlines)
        guard atEndOrComment else {
            throw TOMLSyntaxError(line: line, message: "unexpected '\(String(chars[index...]).prefix(20))' after the value")
        }
    }

    static func isBareKeyChar(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-")
    }

    mutating func readKeyPath() throws(TOMLSyntaxError) -> String {
        var parts: [String] = []
        repeat {
            skipSpaces()
            if peek == "." { advance(); skipSpaces() }
            if peek == "\"" || peek == "'" {
                guard case .string(let s) = try readString() else { fatalError("unreachable") }
                // Keys are kept as dotted paths: a quoted "storage.path" at the top would set
                // storage.path (issue 22). No key of this file holds a '.'.
                guard !s.isEmpty, !s.contains(".") else {
                    throw TOMLSyntaxError(line: line, message: "the quoted key \"\(s.prefix(40))\" is not a plain word (no key here holds a '.'): write [storage] and then path = …, not \"storage.path\" = …")
                }
                parts.append(s)
            } else {
                var part = ""
                while let c = peek, Self.isBareKeyChar(c) { part.append(c); advance() }
                guard !part.isEmpty else {
                    throw TOMLSyntaxError(line: line, message: "expected a key (letters, digits, '_' or '-')")
                }
                parts.append(part)
            }
            skipSpaces()
        } while peek == "."
        return parts.joined(separator: ".")
    }

    mutating func readValue(depth: Int = 0) throws(TOMLSyntaxError) -> TOMLValue.Kind {
        guard let c = peek else {
            throw TOMLSyntaxError(line: line, message: "a value is missing after '='")
        }
        switch c {
        case "\"", "'":
            return try readString()
        case "[":
            guard depth < TOMLDocument.Limits.nesting else {
                throw TOMLSyntaxError(line: line, message: "lists nested more than \(TOMLDocument.Limits.nesting) deep: this is not a config file")
            }
            advance()
            var items: [TOMLValue.Kind] = []
            while true {
                skipSpaces(newlines: true)
                if peek == "]" { advance(); return .array(items) }
                items.append(try readValue(depth: depth + 1))
                skipSpaces(newlines: true)
                if peek == "," { advance(); continue }
                if peek == "]" { advance(); return .array(items) }
                throw TOMLSyntaxError(line: line, message: "expected ',' or ']' in a list")
            }
        case "{":
            throw TOMLSyntaxError(line: line, message: "inline tables ({ ... }) are not used in this file; write a [table] instead")
        default:
            var token = ""
            while let d = peek, d != " ", d != "\t", d != ",", d != "]", d != "#", d != "\n" {
                token.append(d); advance()
            }
            if token == "true" { return .bool(true) }
            if token == "false" { return .bool(false) }
            if token.isEmpty {
                throw TOMLSyntaxError(line: line, message: "a value is missing after '='")
            }
            // TOML: an '_' stands between two digits ("1_000"), nowhere else ("5_", "_5", "1__0").
            let chars = Array(token)
            let underscoresOK = chars.indices.allSatisfy { i in
                chars[i] != "_" || (i > 0 && i + 1 < chars.count && chars[i - 1].isASCII && chars[i - 1].isNumber && chars[i + 1].isASCII && chars[i + 1].isNumber)
            }
            let digits = token.filter { $0 != "_" }
            let numeric = !digits.isEmpty && digits.allSatisfy { $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }
            if numeric, !underscoresOK {
                throw TOMLSyntaxError(line: line, message: "'\(token)' is not a number: an '_' may only stand between two digits, as in 1_000")
            }
            if underscoresOK, let i = Int64(digits) { return .integer(i) }
            if underscoresOK, digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let d = Double(digits) {
                return .float(d)
            }
            if numeric, digits.allSatisfy({ $0.isNumber || $0 == "+" || $0 == "-" }), digits.dropFirst().allSatisfy(\.isNumber) {
                throw TOMLSyntaxError(line: line, message: "\(token) is too large a whole number: at most \(Int64.max) either way")
            }
            throw TOMLSyntaxError(line: line, message: "'\(token)' is not a value: put text in double quotes, like \"\(token)\"")
        }
    }

    mutating func readString() throws(TOMLSyntaxError) -> TOMLValue.Kind {
        let quote = peek!
        advance()
        if peek == quote, index + 1 < chars.count, chars[index + 1] == quote {
            throw TOMLSyntaxError(line: line, message: "multi-line strings are not used in this file")
        }
        var s = ""
        while let c = peek {
            advance()
            if c == quote { return .string(s) }
            if c == "\n" { break }
            if c == "\\" && quote == "\"" {
                guard let e = peek else { break }
                advance()
                switch e {
                case "\"": s.append("\"")
                case "\\": s.append("\\")
                case "n": s.append("\n")
                case "t": s.append("\t")
                case "r": s.append("\r")
                case "b": s.append("\u{8}")
                case "f": s.append("\u{c}")
                case "u", "U":
                    let n = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<n { if let h = peek { hex.append(h); advance() } }
                    guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else {
                        throw TOMLSyntaxError(line: line, message: "'\\\(e)\(hex)' is not a valid unicode escape")
                    }
                    s.unicodeScalars.append(scalar)
                default:
                    throw TOMLSyntaxError(line: line, message: "unknown escape '\\\(e)' in a string; write '\\\\' for a backslash")
                }
            } else {
                s.append(c)
            }
        }
        throw TOMLSyntaxError(line: line, message: "a string is not closed with \(quote)")
    }

    /// Whether the '[' and ']' outside strings and comments balance, fed line by line (so a
    /// long unclosed list costs linear time, not quadratic).
    struct BracketBalance {
        var depth = 0
        var quote: Character?
        var escaped = false
        var comment = false
        var balanced: Bool { depth <= 0 }

        mutating func feed(_ s: String) {
            for c in s {
                if comment { if c == "\n" { comment = false }; continue }
                if let q = quote {
                    if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
                    continue
                }
                switch c {
                case "\"", "'": quote = c
                case "#": comment = true
                case "[": depth += 1
                case "]": depth -= 1
                default: break
                }
            }
        }
    }
}
