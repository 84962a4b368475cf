// The fuzzing driver (Docs/reliability.md).
//
//     amanat-fuzz <target> [libFuzzer options] [corpus folders]   built by Scripts/fuzz.sh: runs libFuzzer
//     amanat-fuzz <target> <file or folder>...                     any build: replays inputs, prints each verdict
//     amanat-fuzz seeds <corpus folder> <repository>               writes the seed corpus
//     amanat-fuzz list                                             prints the targets and their -max_len
//
// Scripts/fuzz.sh builds this with `-D AMANAT_LIBFUZZER`, address sanitizer and coverage instrumentation, and
// links libFuzzer's library without its `main`: this `main` then hands the arguments to `LLVMFuzzerRunDriver`.
import AmanatFuzzTargets
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    fail(
        "usage: amanat-fuzz <target>|seeds|list …; targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))"
    )
}

switch arguments[1] {
case "list":
    for target in FuzzTarget.allCases { print(target.rawValue, target.maximumLength) }
    exit(0)
case "seeds":
    guard arguments.count == 4 else { fail("usage: amanat-fuzz seeds <corpus folder> <repository>") }
    do {
        try FuzzSeeds.write(
            to: URL(fileURLWithPath: arguments[2]), repository: URL(fileURLWithPath: arguments[3]))
    } catch {
        fail("amanat-fuzz: could not write the seeds: \(error)")
    }
    exit(0)
default:
    break
}

guard let target = FuzzTarget(rawValue: arguments[1]) else { fail("amanat-fuzz: no target named \(arguments[1])") }
atexit { FuzzWorkspace.remove() }

#if AMANAT_LIBFUZZER
    @_silgen_name("LLVMFuzzerRunDriver")
    func runDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    nonisolated(unsafe) var selected = target
    // libFuzzer sees the program name followed by everything after the target's name.
    var driverArguments: [UnsafeMutablePointer<CChar>?] =
        ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
    var count = Int32(arguments.count - 1)
    let status = driverArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var base = buffer.baseAddress!
        return runDriver(&count, &base) { data, size in
            selected.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        }
    }
    exit(status)
#else
    var files: [URL] = []
    for path in arguments.dropFirst(2) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { fail("no file \(path)") }
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files += names.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0) }
        } else {
            files.append(URL(fileURLWithPath: path))
        }
    }
    for file in files {
        guard let data = FileManager.default.contents(atPath: file.path) else { fail("cannot read \(file.path)") }
        print(target.run(Array(data)) ? "accepted" : "rejected", file.path)
    }
#endif
