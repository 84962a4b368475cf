import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatStore
import ArgumentParser
import Foundation

/// Where every failure of the command line ends: one `amanat: …` sentence on standard error, with the next step
/// where there is one, and the documented exit status (``CLIError/Status``). The parser's own errors are reworded
/// here too, with "did you mean" for mistyped commands, record kinds and flags, so a user meets one style.
enum ErrorReport {
    static func exit(with error: Error, arguments: [String]) -> Never {
        if error is CleanExit {
            // --help, --version and `amanat help COMMAND`: the parser prints them and exits 0.
            Amanat.exit(withError: error)
        }
        Foundation.exit(report(error, arguments: arguments))
    }

    /// Says what went wrong (nothing for a command that already did, or for help) and returns the exit status.
    static func report(_ error: Error, arguments: [String]) -> Int32 {
        switch error {
        case let code as ExitCode:
            // A command that already said what went wrong (verify listing its problems) and chose its status.
            return code.rawValue
        case is CleanExit:
            print(Amanat.fullMessage(for: error))
            return 0
        case is CLIError, is StoreError, is RelayClientError, is BundleError, is SchemaError, is CoreError,
            is CryptoError:
            let (status, message) = describe(error)
            write(message)
            return status.rawValue
        default:
            break
        }
        let code = Amanat.exitCode(for: error)
        if code == .success {
            print(Amanat.fullMessage(for: error))
            return 0
        }
        guard code.rawValue == CLIError.Status.usage.rawValue else {
            // Not the parser's and not ours: a bug.
            let (status, message) = describe(error)
            write(message)
            return status.rawValue
        }
        write(usageSentence(for: error, arguments: arguments))
        return CLIError.Status.usage.rawValue
    }

    private static func write(_ message: String) {
        try? FileHandle.standardError.write(contentsOf: Data("amanat: \(TerminalText.escape(message))\n".utf8))
    }

    /// The parser's complaint as one sentence, with a suggestion when a word is close to one the command knows.
    static func usageSentence(for error: Error, arguments: [String]) -> String {
        let place = CommandPlace(arguments: arguments)
        let helpStep = "See `\(place.invocation) --help`."
        if let word = place.unknownSubcommand {
            let names = place.command.configuration.subcommands.map { $0._commandName }
            let what =
                place.path == ["add"]
                ? "'\(word)' is not a kind of record (\(names.joined(separator: ", ")))"
                : place.path.isEmpty
                    ? "'\(word)' is not an amanat command"
                    : "'\(word)' is not a command of `\(place.invocation)` (\(names.joined(separator: ", ")))"
            if let close = Suggestion.closest(to: word, among: names) {
                return "\(what); did you mean `\(place.invocation) \(close)`? \(helpStep)"
            }
            return "\(what). \(helpStep)"
        }
        var message = Amanat.message(for: error).split(separator: "\n").first.map(String.init) ?? "Invalid usage"
        message = message.trimmingCharacters(in: .whitespaces)
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        if let range = message.range(of: "Unknown option '"), let end = message[range.upperBound...].firstIndex(of: "'")
        {
            let flag = String(message[range.upperBound..<end])
            let names = place.options.keys.filter { $0.hasPrefix("--") }
            if let close = Suggestion.closest(to: flag, among: Array(names)) {
                return "Unknown option '\(flag)'; did you mean \(close)? \(helpStep)"
            }
        }
        if let last = message.last, !".?!".contains(last) { message += "." }
        return "\(message) \(helpStep)"
    }
}

/// Which command a command line reached, read from its words the way the parser reads them.
struct CommandPlace {
    /// The subcommand names matched, in order (`["bundle", "verify"]`).
    var path: [String] = []
    /// The deepest command matched.
    var command: ParsableCommand.Type = Amanat.self
    /// The command's options, each with whether it takes a value (from its help, which lists exactly those).
    var options: [String: Bool] = [:]
    /// A word where a subcommand was expected that names none of them.
    var unknownSubcommand: String?

    var invocation: String { (["amanat"] + path).joined(separator: " ") }

    init(arguments: [String]) {
        options = Self.options(of: command)
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            if word == "--" { break }
            if word.hasPrefix("-") {
                let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
                if options[name] == true, !word.contains("=") { index += 1 }
                continue
            }
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { break }
            guard let next = subcommands.first(where: { $0._commandName == word }) else {
                unknownSubcommand = word
                break
            }
            command = next
            path.append(word)
            options.merge(Self.options(of: next)) { _, new in new }
        }
    }

    /// `--name` → takes a value, read from the command's help (`--vault <vault>`); short names too.
    static func options(of command: ParsableCommand.Type) -> [String: Bool] {
        let help = Amanat.helpMessage(for: command, includeHidden: true, columns: 10_000)
        var found: [String: Bool] = [:]
        for line in help.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("-") else { continue }
            // "-t, --tag <tag>   Help…": the names before the two-space gap that starts the help text.
            let spec = trimmed.components(separatedBy: "  ").first ?? ""
            let takesValue = spec.contains("<")
            for part in spec.split(whereSeparator: { $0 == "," || $0 == " " }) where part.hasPrefix("-") {
                found[String(part)] = takesValue
            }
        }
        return found
    }
}

/// "Did you mean": the known word closest to a mistyped one, when it is close enough to be meant.
enum Suggestion {
    static func closest(to word: String, among candidates: [String]) -> String? {
        let typed = Array(word.lowercased())
        let limit = typed.count < 4 ? 1 : typed.count < 9 ? 2 : 3
        var best: (name: String, distance: Int)?
        for candidate in candidates.sorted() {
            let distance = editDistance(typed, Array(candidate.lowercased()))
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        if let best { return best.name }
        // A unique candidate the word begins (`--witn` for `--witness`).
        let prefixed = candidates.filter { typed.count >= 3 && $0.lowercased().hasPrefix(word.lowercased()) }
        return prefixed.count == 1 ? prefixed[0] : nil
    }

    /// Edit distance counting a swap of two neighbours as one edit (`lsit` is one edit from `list`).
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
