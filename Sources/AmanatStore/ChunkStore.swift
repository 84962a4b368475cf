import AmanatCore
import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A folder of sealed attachment chunks, one file each, named by address (Protocol/attachments.md §4): the vault's
/// `chunks/` folder and a sync file's `.chunks` folder have the same layout.
///
/// A chunk is written to a temporary file in `.tmp/`, fsynced, renamed to `ab/cdef…` and the folder fsynced, so a
/// crash leaves either the whole chunk or none under its name. The store holds only ciphertext.
public struct ChunkStore: Sendable {
    /// The folder.
    public let root: URL

    /// The largest sealed chunk a reader accepts: the largest chunk size and the sealing overhead.
    public static let maximumSealedLength = Int(AttachmentSpec.chunkSizeRange.upperBound) + ChunkKeys.overhead

    /// A store in `root` (nothing is created until the first write).
    public init(root: URL) { self.root = root }

    /// The file of `address`: `ab/cdef…` (the first byte in hex names the subfolder).
    public func url(for address: [UInt8]) -> URL {
        let hex = Hex.encode(address)
        return root.appendingPathComponent(String(hex.prefix(2))).appendingPathComponent(String(hex.dropFirst(2)))
    }

    /// The size of the stored chunk of `address`, or nil when none is stored.
    public func storedLength(_ address: [UInt8]) -> Int? {
        var info = stat()
        guard lstat(url(for: address).path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    /// Whether a chunk of `address` is stored with exactly `length` sealed bytes (a cheap completeness check; the
    /// content is checked when it is read).
    public func has(_ address: [UInt8], sealedLength length: Int) -> Bool { storedLength(address) == length }

    /// The stored bytes of `address`, or nil when none is stored; a file larger than any chunk is refused unread.
    public func read(_ address: [UInt8]) throws -> [UInt8]? {
        guard let fd = try openChunk(address, direct: false) else { return nil }
        defer { close(fd) }
        // The whole chunk is wanted: one read-ahead of all of it, not the kernel's growing windows (sync reads the
        // chunks it sends this way).
        _ = posix_fadvise(fd, 0, 0, Self.willNeed)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AtomicFile.ioError(errno, "could not read \(url(for: address).path)") }
        guard info.st_size >= 0, info.st_size <= Self.maximumSealedLength else {
            throw StoreError(.damaged, "The chunk \(url(for: address).path) is larger than any chunk Amanat writes.")
        }
        return try FileDescriptorSource.read(fd, upTo: Int(info.st_size), name: url(for: address).path)
    }

    /// `POSIX_FADV_WILLNEED` (Linux's value; Glibc's Swift module does not export the macro).
    static let willNeed: Int32 = 3

    /// What ``read(_:into:)`` found.
    public enum DirectRead: Equatable {
        /// No chunk is stored under the address.
        case missing
        /// The chunk is not `into`'s length: read it with ``read(_:)`` and let the opening say what is wrong.
        case otherLength
        /// The chunk filled `into`.
        case read
    }

    /// Reads the stored chunk of `address`, when it is exactly `into.count` bytes long, into `into`: page-aligned
    /// memory at least that long rounded up to whole pages, so that the file is read with `O_DIRECT`, straight from
    /// the disk into it. Extracting a GiB no longer copies every byte through the page cache nor fills it with pages
    /// the read never needs again (Docs/performance.md, B8). A file system that refuses `O_DIRECT` (at the open or at
    /// the first read) is read plainly.
    public func read(_ address: [UInt8], into: UnsafeMutableRawBufferPointer) throws -> DirectRead {
        let length = into.count
        let rounded = (length + 4095) & ~4095
        precondition(into.baseAddress.map { Int(bitPattern: $0) & 4095 == 0 } ?? false)
        let memory = UnsafeMutableRawBufferPointer(start: into.baseAddress, count: rounded)
        guard let fd = try openChunk(address, direct: true) else { return .missing }
        defer { close(fd) }
        let path = url(for: address).path
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AtomicFile.ioError(errno, "could not read \(path)") }
        guard info.st_size == off_t(length) else { return .otherLength }
        var got = 0
        var plain = false
        while got < length {
            // Whole pages at page offsets while O_DIRECT holds; the kernel stops at the end of the file.
            let n = pread(fd, memory.baseAddress! + got, rounded - got, off_t(got))
            if n < 0 {
                if errno == EINTR { continue }
                // A file system that took O_DIRECT at the open but not at the read: once more, plainly.
                if errno == EINVAL, !plain, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~Self.directFlag) == 0 {
                    plain = true
                    continue
                }
                throw AtomicFile.ioError(errno, "could not read \(path)")
            }
            if n == 0 { break }
            got += n
        }
        // Shorter than it was a moment ago (cut while reading): the opening reports it truncated.
        return got == length ? .read : .otherLength
    }

    /// Opens the stored chunk of `address` for reading, or nil when none is stored (a link or anything but a file
    /// counts as none). `direct` asks for `O_DIRECT` where the file system allows it. The caller closes it.
    private func openChunk(_ address: [UInt8], direct: Bool) throws -> Int32? {
        let path = url(for: address).path
        // O_NONBLOCK: a FIFO put in a chunk's place must not block the open (it is then refused as not a file).
        let flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        var fd = open(path, flags | (direct ? Self.directFlag : 0))
        if fd < 0 && direct && errno == EINVAL { fd = open(path, flags) }
        guard fd >= 0 else {
            if errno == ENOENT || errno == ELOOP || errno == ENOTDIR { return nil }
            throw AtomicFile.ioError(errno, "could not read \(path)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Writes a sealed chunk under `address` through a temporary file, fsync and rename; a chunk already stored with
    /// the same length is left as it is (returns false). A full disk throws ``StoreError/Code/diskFull`` and leaves
    /// nothing of this chunk behind.
    @discardableResult
    public func write(_ address: [UInt8], sealed: [UInt8]) throws -> Bool {
        if has(address, sealedLength: sealed.count) { return false }
        let target = url(for: address)
        let shard = target.deletingLastPathComponent()
        let temporary = root.appendingPathComponent(".tmp")
        for dir in [root, shard, temporary] { try Self.makeFolder(dir) }
        // A copy of another length held here (truncated, or sent by a hostile member) is set aside, never replaced:
        // on a carrier it may be the only good one, under a member's word that it is not. A relay runs one write of
        // an address at a time (``SQLiteRelayStorage``), so what was read is what is moved.
        if let length = storedLength(address), length != sealed.count {
            do {
                if let held = try read(address) { try keepAside(target, sha256: SHA256.hash(held), address: address) }
            } catch let error as StoreError where error.code == .damaged {
                // Larger than any chunk Amanat writes: no copy of any chunk, replaced below.
            }
        }
        let temp = temporary.appendingPathComponent("\(getpid())-\(Hex.encode(Sodium.randomBytes(8)))")
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw AtomicFile.ioError(errno, "could not create \(temp.path)") }
        var written = 0
        var failure: Int32 = 0
        while written < sealed.count {
            let n = sealed.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, sealed.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            written += n
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure != 0 {
            unlink(temp.path)
            throw AtomicFile.ioError(failure, "could not write a chunk to \(root.path)")
        }
        guard rename(temp.path, target.path) == 0 else {
            let e = errno
            unlink(temp.path)
            throw AtomicFile.ioError(e, "could not store a chunk in \(root.path)")
        }
        AtomicFile.syncDirectory(shard)
        return true
    }

    /// A sealed chunk written to a temporary file of `.tmp/` and still open: neither durable nor named yet
    /// (``writeTemporary(_:sealed:)``, then ``commit(_:)``).
    public struct PendingChunk: Sendable {
        /// The chunk's address.
        public let address: [UInt8]
        /// The temporary file.
        let path: String
        /// Its descriptor, open until the commit.
        let fd: Int32
    }

    /// Creates the store's folder and its `.tmp/` folder if missing (refusing symbolic links, ``makeFolder(_:)``).
    public func prepareTemporaryFolder() throws {
        for dir in [root, root.appendingPathComponent(".tmp")] { try Self.makeFolder(dir) }
    }

    /// `O_DIRECT`, which Glibc's Swift module does not export (0 where its value is not known here).
    #if os(Linux) && arch(x86_64)
        static let directFlag: Int32 = 0o40000
    #elseif os(Linux) && arch(arm64)
        static let directFlag: Int32 = 0o200000
    #else
        static let directFlag: Int32 = 0
    #endif

    /// Writes `sealed` to a new temporary file in `.tmp/` (created by ``prepareTemporaryFolder()``) without flushing
    /// it: the file system writes it back while the next chunks are sealed, and ``commit(_:)`` makes it durable and
    /// gives it its name. Ciphertext only; a failure leaves nothing behind.
    public func writeTemporary(_ address: [UInt8], sealed: [UInt8]) throws -> PendingChunk {
        try sealed.withUnsafeBytes { try writeTemporary(address, sealed: $0) }
    }

    /// Like ``writeTemporary(_:sealed:)-([UInt8],_)``, from memory the caller holds. When that memory is page-aligned
    /// (``ChunkKeys/seal(_:address:into:)`` into ``ChunkSlots``), ``DirectFileWriter`` writes the whole pages with
    /// `O_DIRECT` and only the last partial page through the page cache: copying every written byte into the page
    /// cache took about 2 ms of CPU per MiB here, more than sealing it (Docs/performance.md B8). A file system that
    /// refuses `O_DIRECT` gets ordinary writes. Durability still comes from ``commit(_:)``'s fsync.
    public func writeTemporary(_ address: [UInt8], sealed: UnsafeRawBufferPointer) throws -> PendingChunk {
        let temp = root.appendingPathComponent(".tmp").appendingPathComponent(
            "\(getpid())-\(Hex.encode(Sodium.randomBytes(8)))"
        ).path
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AtomicFile.ioError(errno, "could not create \(temp)") }
        do {
            var writer = DirectFileWriter(fd: fd, name: "a chunk to \(root.path)")
            defer { writer.finish() }
            try writer.write(sealed)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        return PendingChunk(address: address, path: temp, fd: fd)
    }

    /// Makes pending chunks durable and names them: each file is fsynced (the file system commits them together,
    /// so after the first the others are cheap), closed and renamed to its address. A chunk gets its name only
    /// after its bytes are on the disk, so a crash leaves whole chunks or none under their names. The renames are
    /// durable once the returned folders are fsynced (``syncFolders(_:)``), which the caller does before anything
    /// references the chunks. On a failure every temporary file not renamed yet is removed.
    public func commit(_ pending: [PendingChunk]) throws -> Set<String> {
        var closed = 0
        func abandon(from index: Int, _ code: Int32, _ what: String) -> StoreError {
            for item in pending[closed...] { close(item.fd) }
            for item in pending[index...] { unlink(item.path) }
            return AtomicFile.ioError(code, what)
        }
        for item in pending where fsync(item.fd) != 0 {
            throw abandon(from: 0, errno, "could not write a chunk to \(root.path)")
        }
        for item in pending {
            close(item.fd)
            closed += 1
        }
        var shards: Set<String> = []
        for (index, item) in pending.enumerated() {
            let target = url(for: item.address)
            let shard = target.deletingLastPathComponent()
            if !shards.contains(shard.path) {
                do {
                    try Self.makeFolder(shard)
                } catch {
                    for rest in pending[index...] { unlink(rest.path) }
                    throw error
                }
                shards.insert(shard.path)
            }
            guard rename(item.path, target.path) == 0 else {
                throw abandon(from: index, errno, "could not store a chunk in \(root.path)")
            }
        }
        return shards
    }

    /// Removes pending chunks that will not be committed (an attach that failed or stopped).
    public func abandon(_ pending: [PendingChunk]) {
        for item in pending {
            close(item.fd)
            unlink(item.path)
        }
    }

    /// Fsyncs the shard folders ``commit(_:)`` renamed chunks into, and the store's folder (which holds new shard
    /// folders): after this the committed chunks keep their names through a crash.
    public func syncFolders(_ shards: Set<String>) {
        for shard in shards.sorted() { AtomicFile.syncDirectory(URL(fileURLWithPath: shard)) }
        AtomicFile.syncDirectory(root)
    }

    /// Makes sure `dir` is a real folder, creating it if missing. A symbolic link (or anything else) where a chunk
    /// folder belongs is refused: a hostile stick could otherwise send chunks into any folder of this laptop.
    static func makeFolder(_ dir: URL) throws {
        var info = stat()
        if lstat(dir.path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw StoreError(
                    .damaged,
                    "\(dir.path) is a symbolic link or not a folder where a folder of attachment chunks belongs; nothing was written through it."
                )
            }
            return
        }
        if mkdir(dir.path, 0o700) != 0 && errno != EEXIST {
            throw AtomicFile.ioError(errno, "could not create the folder \(dir.path)")
        }
    }

    /// The file a damaged chunk of `address` is set aside to: `ab/cdef….damaged`, beside its place.
    public func damagedURL(for address: [UInt8]) -> URL {
        let url = url(for: address)
        return url.deletingLastPathComponent().appendingPathComponent(url.lastPathComponent + ".damaged")
    }

    /// How many damaged copies are set aside in the store (``setAside(_:)``, ``setAside(_:ifSHA256:)``).
    public func setAsideCount() -> Int { names().filter { Self.isSetAsideName($0.name) }.count }

    /// `cdef….damaged`, `cdef….damaged-<SHA-256, 64 hex>` or `cdef….checking-<16 hex>` (a check a process did not
    /// finish).
    static func isSetAsideName(_ name: String) -> Bool {
        guard name.count > 62 else { return false }
        let rest = name.dropFirst(62)
        return rest == ".damaged" || (rest.count == 73 && rest.hasPrefix(".damaged-"))
            || (rest.count == 26 && rest.hasPrefix(".checking-"))
    }

    /// Moves the stored chunk of `address` aside (``damagedURL(for:)``, replacing an earlier one there) because it
    /// did not authenticate: the address then counts as missing, so `status` and `attachments` say so and the next
    /// sync or fetch brings a good copy. The damaged bytes are kept, not destroyed (the latest damaged copy of each
    /// address): `purge` removes them with the chunk (``remove(_:)``). For this device's own store, which checked the
    /// copy itself; a carrier sets aside on a member's word with ``setAside(_:ifSHA256:)``, which never replaces one.
    public func setAside(_ address: [UInt8]) throws {
        try checkFolders(of: address)
        let url = url(for: address)
        guard rename(url.path, damagedURL(for: address).path) == 0 else {
            throw AtomicFile.ioError(errno, "could not set aside the damaged chunk \(url.path)")
        }
        AtomicFile.syncDirectory(url.deletingLastPathComponent())
    }

    /// The store's folder and the shard folder of `address` must be real folders: a symbolic link planted on a stick
    /// would otherwise carry a rename to any folder of this laptop.
    func checkFolders(of address: [UInt8]) throws {
        for dir in [root, url(for: address).deletingLastPathComponent()] {
            var info = stat()
            guard lstat(dir.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw StoreError(
                    .damaged,
                    "\(dir.path) is a symbolic link or not a folder where a folder of attachment chunks belongs; nothing was moved through it."
                )
            }
        }
    }

    /// Where a carrier keeps a copy of `address` it set aside: `ab/cdef….damaged-<its SHA-256 in hex>`, one per
    /// content, so that setting one aside never replaces another (a carrier sets aside on a member's word, and the
    /// copy may be the only good one).
    public func setAsideURL(for address: [UInt8], sha256: [UInt8]) -> URL {
        URL(fileURLWithPath: url(for: address).path + ".damaged-" + Hex.encode(sha256))
    }

    /// Moves the file at `from` (whose content has the SHA-256 `sha256`) to ``setAsideURL(for:sha256:)``, never
    /// replacing a file there: one there already has the same content (the full SHA-256 names it), so this copy
    /// goes. On a file system without hard links (FAT), by renaming.
    func keepAside(_ from: URL, sha256: [UInt8], address: [UInt8]) throws {
        let aside = setAsideURL(for: address, sha256: sha256)
        if link(from.path, aside.path) == 0 || errno == EEXIST {
            unlink(from.path)
        } else if rename(from.path, aside.path) != 0 {
            throw AtomicFile.ioError(errno, "could not set aside the chunk \(from.path)")
        }
    }

    /// Sets the stored copy of `address` aside (``setAsideURL(for:sha256:)``) only if its SHA-256 is `sha256`: a copy
    /// a member fetched from this carrier and found damaged. Nothing is ever deleted: the copy is first moved to a
    /// name of its own beside its place (so the bytes compared are the bytes set aside, and a copy stored meanwhile
    /// is never touched); one that is not the copy named goes back to its place with `link`, which never replaces a
    /// copy stored in between (that one stays, and the other is set aside too), or with `rename` on a file system
    /// without hard links (FAT). A process killed in between leaves it under `….checking-…`, kept and not served.
    /// Returns whether the copy named was set aside.
    public func setAside(_ address: [UInt8], ifSHA256 sha256: [UInt8]) throws -> Bool {
        try checkFolders(of: address)
        let url = url(for: address)
        let taken = URL(fileURLWithPath: url.path + ".checking-\(Hex.encode(Sodium.randomBytes(8)))")
        guard rename(url.path, taken.path) == 0 else {
            if errno == ENOENT { return false }
            throw AtomicFile.ioError(errno, "could not set aside the damaged chunk \(url.path)")
        }
        defer { AtomicFile.syncDirectory(url.deletingLastPathComponent()) }
        var bytes: [UInt8]?
        let fd = open(taken.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd >= 0 {
            var info = stat()
            if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size >= 0,
                info.st_size <= Self.maximumSealedLength
            {
                bytes = try? FileDescriptorSource.read(fd, upTo: Int(info.st_size), name: taken.path)
            }
            close(fd)
        }
        let digest = bytes.map(SHA256.hash)
        if let digest, digest == sha256 {
            do {
                try keepAside(taken, sha256: digest, address: address)
            } catch {
                putBack(taken, to: url, digest: digest, address: address)
                throw error
            }
            return true
        }
        putBack(taken, to: url, digest: digest, address: address)
        return false
    }

    /// Puts a copy taken aside for checking back in its place, unless one was stored there meanwhile: then it is set
    /// aside under its own content (never deleted); a file whose content could not be read stays where it is.
    private func putBack(_ taken: URL, to url: URL, digest: [UInt8]?, address: [UInt8]) {
        if link(taken.path, url.path) == 0 {
            unlink(taken.path)  // the same file is in its place again
        } else if errno == EEXIST {
            if let digest { try? keepAside(taken, sha256: digest, address: address) }
        } else {
            // No hard links here (FAT, exFAT): back by renaming, which would replace a copy stored in this instant.
            _ = rename(taken.path, url.path)
        }
    }

    /// The length of the regular file at `url`, or 0.
    private func storedLengthOf(_ url: URL) -> Int {
        var info = stat()
        return lstat(url.path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// The lengths of every copy of `address` set aside in the store (``isSetAsideName(_:)``), or 0.
    public func setAsideLength(_ address: [UInt8]) -> Int {
        let url = url(for: address)
        let shard = url.deletingLastPathComponent()
        return ((try? FileManager.default.contentsOfDirectory(atPath: shard.path)) ?? []).reduce(0) { total, name in
            name.hasPrefix(url.lastPathComponent) && Self.isSetAsideName(name)
                ? total + storedLengthOf(shard.appendingPathComponent(name)) : total
        }
    }

    /// What the store holds for `address` on the disk: its copy, if any, and every copy set aside.
    public func lengthOnDisk(of address: [UInt8]) -> Int { (storedLength(address) ?? 0) + setAsideLength(address) }

    /// The lengths of the copies set aside in the store (they count toward a relay's quota until a purge).
    public func setAsideBytes() -> UInt64 {
        names().reduce(0) { total, file in
            guard Self.isSetAsideName(file.name) else { return total }
            return total
                + UInt64(storedLengthOf(root.appendingPathComponent(file.shard).appendingPathComponent(file.name)))
        }
    }

    /// Removes the chunks of `addresses` (the one function that destroys attachment content: `purge` calls it).
    /// Each file is overwritten with zeros and fsynced before it is unlinked; returns how many were removed.
    @discardableResult
    public func remove(_ addresses: [[UInt8]]) -> Int {
        var removed = 0
        for address in addresses {
            let url = url(for: address)
            if Self.overwriteAndUnlink(url) { removed += 1 }
            // Every copy set aside goes with it (``isSetAsideName(_:)``): ciphertext of the same address.
            let shard = url.deletingLastPathComponent()
            for name in (try? FileManager.default.contentsOfDirectory(atPath: shard.path)) ?? []
            where name.hasPrefix(url.lastPathComponent) && Self.isSetAsideName(name) {
                _ = Self.overwriteAndUnlink(shard.appendingPathComponent(name))
            }
            AtomicFile.syncDirectory(shard)
        }
        return removed
    }

    /// Overwrites the regular file at `url` with zeros, fsyncs and unlinks it; whether there was one to remove.
    static func overwriteAndUnlink(_ url: URL) -> Bool {
        var info = stat()
        guard lstat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        let length = Int(info.st_size)
        let fd = open(url.path, O_WRONLY)
        if fd >= 0 {
            let zeros = [UInt8](repeating: 0, count: min(length, 1 << 20))
            var done = 0
            while done < length {
                let n = zeros.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, min(zeros.count, length - done)) }
                if n <= 0 { break }
                done += n
            }
            _ = fsync(fd)
            close(fd)
        }
        return unlink(url.path) == 0
    }

    /// Unlinks the chunks of `addresses` without overwriting them first: for chunks an attach wrote and then gave up
    /// on (ciphertext nothing references), when the disk needs the room back at once.
    public func discard(_ addresses: [[UInt8]]) {
        var shards: Set<String> = []
        for address in addresses {
            let url = url(for: address)
            if unlink(url.path) == 0 { shards.insert(url.deletingLastPathComponent().path) }
        }
        for shard in shards { AtomicFile.syncDirectory(URL(fileURLWithPath: shard)) }
    }

    /// Removes temporary files left by processes that no longer run (a killed attach or sync): ciphertext only,
    /// never referenced, and never a whole chunk's name.
    public func sweepTemporaryFiles() {
        let temporary = root.appendingPathComponent(".tmp")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: temporary.path) else { return }
        for name in names {
            guard let pid = Int32(name.prefix { $0 != "-" }), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(temporary.appendingPathComponent(name).path) }
        }
    }

    /// Every address stored, in no particular order (for tests and `status`).
    public func addresses() -> [[UInt8]] {
        names().compactMap { file in
            guard file.name.count == 62, let bytes = Hex.decode(file.shard + file.name), bytes.count == 32 else {
                return nil
            }
            return bytes
        }
    }

    /// Every file name in the store's shard folders (`ab/…`), with its shard.
    private func names() -> [(shard: String, name: String)] {
        let fm = FileManager.default
        guard let shards = try? fm.contentsOfDirectory(atPath: root.path) else { return [] }
        return shards.filter { $0.count == 2 }.flatMap { shard in
            ((try? fm.contentsOfDirectory(atPath: root.appendingPathComponent(shard).path)) ?? []).map { (shard, $0) }
        }
    }
}

/// Writes to a descriptor (a chunk file being stored, an extracted file): whole pages from page-aligned memory with
/// `O_DIRECT` while the file offset stays page-aligned, the rest (the last partial page) through the page cache.
/// Copying every written byte into the page cache cost about 2 ms of CPU per MiB here, more than sealing or opening
/// it, and on a virtual machine much more when the pages were never used (Docs/performance.md, B8). Only a regular
/// file at an aligned offset, not opened for appending, is written directly; anything else (a pipe, a file system
/// that refuses `O_DIRECT`) gets ordinary writes. ``finish()`` gives the descriptor its flags back.
struct DirectFileWriter {
    let fd: Int32
    let name: String
    private let flags: Int32
    private var direct: Bool

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
        flags = fcntl(fd, F_GETFL)
        var info = stat()
        let offset = lseek(fd, 0, SEEK_CUR)
        direct =
            ChunkStore.directFlag != 0 && flags >= 0 && flags & O_APPEND == 0 && fstat(fd, &info) == 0
            && info.st_mode & S_IFMT == S_IFREG && offset >= 0 && offset & 4095 == 0
            && fcntl(fd, F_SETFL, flags | ChunkStore.directFlag) == 0
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        if direct {
            let pages = Int(bitPattern: base) & 4095 == 0 ? bytes.count & ~4095 : 0
            while done < pages {
                let n = Glibc.write(fd, base + done, pages - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EINVAL { break }  // the file system wants another alignment: write plainly
                    throw AtomicFile.ioError(errno, "could not write \(name)")
                }
                done += n
                if n & 4095 != 0 { break }
            }
            // A partial page leaves the offset unaligned: from here on, through the page cache.
            if done < bytes.count { finish() }
        }
        while done < bytes.count {
            let n = Glibc.write(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw AtomicFile.ioError(errno, "could not write \(name)")
            }
            done += n
        }
    }

    /// Stops writing directly and gives the descriptor its flags back.
    mutating func finish() {
        guard direct else { return }
        direct = false
        _ = fcntl(fd, F_SETFL, flags)
    }
}
