import Commune
import Wire

/// The box list's software column and the rollouts under it (issue 24).
extension Desk {
    /// A box's release, slot, download and last update (issue 24); everything it sent escaped.
    static func software(_ r: FleetUpdate.Report?, t: (Key) -> String, local: LocalForm) -> String {
        guard let r else { return "—" }
        var html = HTML.escape(r.release) + (r.booted.map { " · \(t(.slot)) \(HTML.escape($0))" } ?? "<br><small>\(t(.oneSlot))</small>")
        if let d = r.downloading {
            let share = r.downloadedBytes.map { " \(local.bytes($0))" } ?? ""
            html += "<br><small>\(t(.updDownloading)) \(HTML.escape(d))\(share)</small>"
        }
        if let l = r.last {
            let result: Key? = ["installed": .updInstalled, "blessed": .updBlessed, "rolled_back": .updRolledBack, "refused": .updRefused, "failed": .updFailed][l.result]
            let bad = ["rolled_back", "refused", "failed"].contains(l.result)
            html += "<br><small class=\"\(bad ? "error-text" : "")\" data-update=\"\(HTML.escape(l.result))\">\(HTML.escape(l.version)): \(result.map(t) ?? HTML.escape(l.result)), \(local.dateTime(l.at))"
            if let why = l.reason { html += " — \(HTML.escape(why))" }
            html += "</small>"
        }
        return html
    }

    /// The commune's settings on a box (issue 24, item 7): the revision in force, and what
    /// became of the newest one sent, in words.
    static func settings(_ s: (report: RemoteSettings.Report?, newest: Catalog.SettingsRevision?)?, t: (Key) -> String, local: LocalForm) -> String {
        // Nothing sent and nothing in force: nothing to say (most boxes, most of the time).
        guard let s, s.newest != nil || s.report?.inForce != nil else { return "" }
        var html = "<br><small data-settings=\"\(s.report?.inForce.map { "\($0)" } ?? "card")\">\(t(.settingsFromCommune)): "
        html += s.report?.inForce.map { "\(t(.revision)) \($0) \(t(.setApplied))" } ?? t(.settingsCardOnly)
        html += "</small>"
        if let n = s.newest, n.revision != s.report?.inForce {
            let key: Key = switch n.result {
            case .applied?: .setApplied
            case .rolledBack?: .setRolledBack
            case .refused?: .setRefused
            case .superseded?: .setSuperseded
            case nil: .setWaiting
            }
            let bad = n.result == .rolledBack || n.result == .refused
            html += "<br><small class=\"\(bad ? "error-text" : "")\" data-settings-result=\"\(n.result?.rawValue ?? "waiting")\">\(t(.revision)) \(n.revision): \(t(key))"
            if let at = n.resultAt { html += ", \(local.dateTime(at))" }
            if let why = n.reason { html += " — \(HTML.escape(why))" }
            html += "</small>"
        }
        return html
    }

    /// The last rollouts: version, state and why it stopped, the wave open, boxes by state.
    func rolloutsSection(t: (Key) -> String, local: LocalForm) async throws -> String {
        let all = try await catalog.rollouts().sorted { $0.created > $1.created }.prefix(5)
        guard !all.isEmpty else { return "<h2>\(t(.rollouts))</h2>\n<p>\(t(.noRollouts))</p>" }
        var rows = ""
        for r in all {
            let boxes = try await catalog.rollout(id: r.id)?.1 ?? []
            let state: Key = switch r.state { case .running: .rolloutRunning; case .stopped: .rolloutStopped; case .done: .rolloutDone }
            let order: [(RolloutBox.State, Key)] = [(.blessed, .boxBlessed), (.trial, .boxTrial), (.installed, .boxInstalled), (.offered, .boxOffered),
                                                    (.waiting, .boxWaiting), (.failed, .boxFailed)]
            let counts = order.compactMap { s, k -> String? in
                let n = boxes.filter { $0.state == s }.count
                return n == 0 ? nil : "<span class=\"rollout-\(s.rawValue)\">\(n) \(t(k))</span>"
            }.joined(separator: " · ")
            let failed = boxes.filter { $0.state == .failed }.map { "\(HTML.escape($0.device))\($0.reason.map { ": " + HTML.escape($0) } ?? "")" }
            let waves = max(1, r.waves.count)
            rows += "<tr data-rollout=\"\(HTML.escape(r.id))\"><th scope=\"row\">\(HTML.escape(r.version)) <small>(\(HTML.escape(r.arch)))</small></th>"
                + "<td class=\"rollout-state \(r.state.rawValue)\">\(t(state))\(r.reason.map { "<br><small>\(HTML.escape($0))</small>" } ?? "")</td>"
                + "<td>\(min(r.wave + 1, waves)) / \(waves)</td><td>\(counts)\(failed.isEmpty ? "" : "<br><small class=\"error-text\">\(failed.prefix(10).joined(separator: "; "))</small>")</td>"
                + "<td>\(local.dateTime(r.updated))</td></tr>\n"
        }
        let headings: [Key] = [.version, .requestState, .wave, .boxes, .when]
        return """
            <h2>\(t(.rollouts))</h2>
            <div class="scroll"><table class="rollouts"><thead><tr>\(headings.map { "<th scope=\"col\">\(t($0))</th>" }.joined())</tr></thead>
            <tbody>
            \(rows)</tbody></table></div>
            """
    }
}
