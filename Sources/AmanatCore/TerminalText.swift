/// Makes text from a vault, a sync file, a bundle, an invitation or a relay request safe to show on a terminal or
/// to write in a log.
///
/// Data is written by other people, and a terminal obeys what it prints: ESC and C1 controls can set the window title,
/// clear the screen or colour a fake "ok" line; a carriage return or a line separator can overwrite or forge a line;
/// bidirectional overrides and isolates can reorder what a reader sees. Every human (non-JSON) output path that
/// shows data passes it through ``escape(_:)``, and so does every relay log line that includes anything from a
/// request (a log is read on a terminal too). Each such character is shown as `\u{XXXX}` (its code point in hex).
///
/// Escaped: every C0 control (U+0000–U+001F, **newline and tab included**: commands that print multi-line text split
/// it into lines themselves and indent each one, so data can never start a line of its own), DEL (U+007F), every C1
/// control (U+0080–U+009F), the explicit bidirectional embeddings and overrides (U+202A–U+202E) and isolates
/// (U+2066–U+2069), the line and paragraph separators (U+2028, U+2029), and invisible characters that can make two
/// different texts look alike: zero width space (U+200B), word joiner and invisible operators (U+2060–U+2064), the
/// deprecated format controls (U+206A–U+206F), the byte order mark (U+FEFF), interlinear annotation controls
/// (U+FFF9–U+FFFB) and tag characters (U+E0000–U+E007F).
///
/// Kept: every letter of every script, right-to-left ones included (Dari and Pashto print intact), and the
/// format characters that Persian and Arabic text needs: zero width non-joiner (U+200C), zero width joiner (U+200D),
/// the left-to-right, right-to-left and Arabic letter marks (U+200E, U+200F, U+061C), which only influence
/// neighbouring neutral characters and cannot reorder a line the way an override can.
///
/// A backslash is not escaped, so data that already contains the text `\u{1B}` looks the same as an escaped ESC;
/// `--json` shows values byte-exact where that matters.
public enum TerminalText {
    /// `text` with every character listed above shown as `\u{XXXX}`.
    public static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x00...0x1F, 0x7F...0x9F, 0x200B, 0x2028...0x202E, 0x2060...0x2064, 0x2066...0x206F, 0xFEFF,
                0xFFF9...0xFFFB, 0xE0000...0xE007F:
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default:
                out.append(scalar)
            }
        }
        return String(out)
    }
}
