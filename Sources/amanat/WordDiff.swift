/// A word-level difference between two values, as `history --full` shows an amendment: unchanged words as they are,
/// removed words as `[-…-]`, added words as `{+…+}` (the notation of `git diff --word-diff=plain`).
///
/// Words are runs of non-space characters, shown joined by single spaces. The longest common subsequence
/// is computed over words (quadratic: values longer than ``maximumCells`` word pairs are shown as a whole
/// replacement instead, so a long narrative cannot make `history` slow).
enum WordDiff {
    static let maximumCells = 4_000_000

    /// Tokens of `text`: words and the runs of white space between them, in order.
    static func tokens(_ text: String) -> [Substring] {
        var out: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let space = text[index].isWhitespace
            var end = index
            while end < text.endIndex && text[end].isWhitespace == space { end = text.index(after: end) }
            out.append(text[start..<end])
            start = end
            index = end
        }
        return out
    }

    static func render(from old: String, to new: String) -> String {
        let a = tokens(old).filter { !$0.allSatisfy(\.isWhitespace) }
        let b = tokens(new).filter { !$0.allSatisfy(\.isWhitespace) }
        guard a.count * b.count <= maximumCells else { return "[-\(old)-] {+\(new)+}" }
        // lcs[i][j]: the longest common subsequence of a[i...] and b[j...].
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var pieces: [String] = []
        var removed: [Substring] = []
        var added: [Substring] = []
        func flush() {
            if !removed.isEmpty { pieces.append("[-" + removed.joined(separator: " ") + "-]") }
            if !added.isEmpty { pieces.append("{+" + added.joined(separator: " ") + "+}") }
            removed = []
            added = []
        }
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if i < a.count && j < b.count && a[i] == b[j] {
                flush()
                pieces.append(String(a[i]))
                i += 1
                j += 1
            } else if j < b.count && (i == a.count || lcs[i][j + 1] >= lcs[i + 1][j]) {
                added.append(b[j])
                j += 1
            } else {
                removed.append(a[i])
                i += 1
            }
        }
        flush()
        return pieces.joined(separator: " ")
    }
}
