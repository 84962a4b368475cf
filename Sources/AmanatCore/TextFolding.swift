import Foundation

/// Folding text for search, so that one word typed on a Persian, Dari, Pashto or Arabic keyboard, with or without
/// the invisible joiners and vowel marks, finds the same records.
///
/// Done by hand, as a fixed table, because no Foundation or ICU transform folds exactly this: ICU's
/// `Any-Latin` would transliterate, and NFKC maps Arabic presentation forms but keeps ك (U+0643) and ک (U+06A9)
/// apart, as it must. Foundation does the rest: case and width folding, and removing combining marks
/// (`folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive])`), which takes away the
/// harakat (fatha, kasra, damma, sukun, shadda, tanwin) and the hamza above or below a letter once it is decomposed.
public enum TextFolding {
    /// Letter variants folded to one letter (Protocol-independent: used only in memory, never stored).
    static let letters: [Unicode.Scalar: String] = [
        "\u{0643}": "\u{06A9}",  // Arabic kaf → keheh (ک)
        "\u{06AA}": "\u{06A9}",  // swash kaf → keheh
        "\u{064A}": "\u{06CC}",  // Arabic yeh → Farsi yeh (ی)
        "\u{0649}": "\u{06CC}",  // alef maksura → Farsi yeh
        "\u{06D0}": "\u{06CC}",  // Pashto yeh (ې) → Farsi yeh
        "\u{06CD}": "\u{06CC}",  // yeh with tail (ۍ) → Farsi yeh
        "\u{0626}": "\u{06CC}",  // yeh with hamza above → Farsi yeh
        "\u{0629}": "\u{0647}",  // teh marbuta → heh
        "\u{06C0}": "\u{0647}",  // heh with yeh above → heh
        "\u{06C1}": "\u{0647}",  // heh goal → heh
        "\u{06D5}": "\u{0647}",  // ae → heh
        "\u{0623}": "\u{0627}",  // alef with hamza above → alef
        "\u{0625}": "\u{0627}",  // alef with hamza below → alef
        "\u{0622}": "\u{0627}",  // alef with madda → alef
        "\u{0671}": "\u{0627}",  // alef wasla → alef
        "\u{0624}": "\u{0648}",  // waw with hamza above → waw
    ]

    /// Removed: zero width non-joiner and joiner, tatweel, the bidirectional marks, and the standalone hamza.
    static let ignored: Set<UInt32> = [0x200C, 0x200D, 0x0640, 0x200E, 0x200F, 0x061C, 0x0621]

    /// `text` with Persian (۰–۹) and Arabic-Indic (٠–٩) digits replaced by ASCII digits; nothing else changes.
    public static func asciiDigits(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x06F0...0x06F9: out.append(Unicode.Scalar(scalar.value - 0x06F0 + 0x30)!)
            case 0x0660...0x0669: out.append(Unicode.Scalar(scalar.value - 0x0660 + 0x30)!)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// The search key of `text`: case, width and diacritics folded, Arabic and Persian letter variants made one,
    /// joiners and tatweel removed, digits made ASCII.
    public static func searchKey(_ text: String) -> String {
        // Fold letters first: the hamza forms are single precomposed letters that decomposition would split.
        var out = String.UnicodeScalarView()
        for scalar in asciiDigits(text).unicodeScalars {
            if ignored.contains(scalar.value) { continue }
            if let replacement = letters[scalar] {
                out.append(contentsOf: replacement.unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        let folded = String(out).folding(
            options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil)
        // Arabic harakat (U+064B–U+065F, U+0670) are marks; drop any the folding kept.
        return String(
            String.UnicodeScalarView(
                folded.unicodeScalars.filter { !((0x064B...0x065F).contains($0.value) || $0.value == 0x0670) }))
    }

    /// Whether `haystack` contains `needle` once both are folded.
    public static func matches(_ haystack: String, _ needle: String) -> Bool {
        searchKey(haystack).contains(searchKey(needle))
    }
}
