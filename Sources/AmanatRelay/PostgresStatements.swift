import AmanatCore
import Foundation
import NIOCore
import PostgresNIO

// The statements every request runs, prepared once per connection (postgres-nio sends `Parse` the first time a
// connection sees a statement's name, then only `Bind` and `Execute`). Parsing, analysing and planning a statement
// again at each request was half of the PostgreSQL server's CPU under `make load`; a prepared statement is planned
// for its parameters a few times, then the server keeps its generic plan. Each takes its arrays whole, so one text
// serves any number of authors or envelopes.

/// A prepared statement whose bindings are made when it is built. Each names itself: postgres-nio's default name is
/// `String(reflecting:)` of the type, computed again at every execution.
protocol RelayStatement: PostgresPreparedStatement {
    var bindings: PostgresBindings { get }
}

extension RelayStatement {
    func makeBindings() throws -> PostgresBindings { bindings }
}

/// The vault's relay key, whether the nonce was recorded now (only for that key: 1, else 0) and the number of
/// authority envelopes held; no row when the vault is not held.
struct AdmitStatement: RelayStatement {
    static let name = "amanat_admit"
    static let sql = """
        WITH v AS (SELECT id, relay_key FROM relay_vault WHERE id = $1),
        n AS (
            INSERT INTO relay_nonce (vault, nonce, expires) SELECT id, $2, $3 FROM v WHERE relay_key = $4
            ON CONFLICT (vault, nonce) DO NOTHING RETURNING 1)
        SELECT v.relay_key, (SELECT count(*) FROM n),
            (SELECT count(*) FROM relay_envelope WHERE vault = $1 AND authority)
        FROM v
        """
    typealias Row = (Data, Int64, Int64)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], nonce: [UInt8], expires: Int64, key: [UInt8]) throws {
        var bindings = PostgresBindings(capacity: 4)
        try bindings.append(Data(vaultID))
        try bindings.append(Data(nonce))
        bindings.append(expires)
        try bindings.append(Data(key))
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Each author's head (seq and hash) and, for the authors listed in $2 with their seqs in $3, the hash held at that
/// seq (null when none). One row with nulls when the vault holds no envelope; no row when the vault is not held.
///
/// The authors are found by a skip scan of the primary key (one index descent per author) and each head by one
/// more, so the cost grows with the number of authors, not with the envelopes held.
struct HeadsStatement: RelayStatement {
    static let name = "amanat_heads"
    static let sql = """
        WITH RECURSIVE authors (author) AS (
            (SELECT author FROM relay_envelope WHERE vault = $1 ORDER BY author LIMIT 1)
            UNION ALL
            SELECT (SELECT e.author FROM relay_envelope e WHERE e.vault = $1 AND e.author > a.author
                    ORDER BY e.author LIMIT 1)
            FROM authors a WHERE a.author IS NOT NULL
        ), theirs (author, seq) AS (SELECT * FROM unnest($2::bytea[], $3::int8[]))
        SELECT a.author, h.seq, h.hash,
            (SELECT e.hash FROM theirs t JOIN relay_envelope e
                ON e.vault = $1 AND e.author = t.author AND e.seq = t.seq WHERE t.author = a.author)
        FROM relay_vault v LEFT JOIN (authors a CROSS JOIN LATERAL (
            SELECT seq, hash FROM relay_envelope e WHERE e.vault = $1 AND e.author = a.author
            ORDER BY e.seq DESC LIMIT 1) h) ON true
        WHERE v.id = $1
        """
    typealias Row = (Data?, Int64?, Data?, Data?)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], theirs: [(DeviceID, UInt64)]) throws {
        var bindings = PostgresBindings(capacity: 3)
        try bindings.append(Data(vaultID))
        bindings.append(theirs.map { ByteBuffer(bytes: $0.0.bytes) })
        bindings.append(theirs.map { Int64(clamping: $0.1) })
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// For each (author, after, take) in order, up to `take` bodies of the author's envelopes after `after`, in seq
/// order, each with its author's 1-based position in the lists.
struct BodiesStatement: RelayStatement {
    static let name = "amanat_bodies"
    static let sql = """
        SELECT w.ord, e.body
        FROM unnest($2::bytea[], $3::int8[], $4::int8[]) WITH ORDINALITY AS w (author, after, take, ord)
        CROSS JOIN LATERAL (SELECT seq, body FROM relay_envelope e WHERE e.vault = $1
            AND e.author = w.author AND e.seq > w.after ORDER BY e.seq LIMIT w.take) e
        ORDER BY w.ord, e.seq
        """
    typealias Row = (Int64, Data)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], wants: [(author: DeviceID, after: UInt64, take: Int)]) throws {
        var bindings = PostgresBindings(capacity: 4)
        try bindings.append(Data(vaultID))
        bindings.append(wants.map { ByteBuffer(bytes: $0.author.bytes) })
        bindings.append(wants.map { Int64(clamping: $0.after) })
        bindings.append(wants.map { Int64($0.take) })
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Takes the vault's row lock (one row when the vault is held).
struct LockVaultStatement: RelayStatement {
    static let name = "amanat_lock_vault"
    static let sql = "SELECT 1 FROM relay_vault WHERE id = $1 FOR NO KEY UPDATE"
    typealias Row = Int32
    let bindings: PostgresBindings

    init(vaultID: [UInt8]) throws {
        var bindings = PostgresBindings(capacity: 1)
        try bindings.append(Data(vaultID))
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The heads of the authors in $2 (a row each for those with envelopes), then one row with a null author whose seq
/// is the number of authority envelopes held.
struct PushHeadsStatement: RelayStatement {
    static let name = "amanat_push_heads"
    static let sql = """
        SELECT a.author, h.seq, h.hash FROM unnest($2::bytea[]) AS a (author)
        CROSS JOIN LATERAL (SELECT seq, hash FROM relay_envelope e WHERE e.vault = $1 AND e.author = a.author
            ORDER BY e.seq DESC LIMIT 1) h
        UNION ALL SELECT NULL, count(*), NULL FROM relay_envelope WHERE vault = $1 AND authority
        """
    typealias Row = (Data?, Int64, Data?)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], authors: [DeviceID]) throws {
        var bindings = PostgresBindings(capacity: 2)
        try bindings.append(Data(vaultID))
        bindings.append(authors.map { ByteBuffer(bytes: $0.bytes) })
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Inserts envelopes of one vault: the lists zipped row by row.
struct InsertEnvelopesStatement: RelayStatement {
    static let name = "amanat_insert_envelopes"
    static let sql = """
        INSERT INTO relay_envelope (vault, author, seq, hash, authority, body)
        SELECT $1, * FROM unnest($2::bytea[], $3::int8[], $4::bytea[], $5::bool[], $6::bytea[])
        """
    typealias Row = ()
    let bindings: PostgresBindings

    init(
        vaultID: [UInt8], authors: [ByteBuffer], seqs: [Int64], hashes: [ByteBuffer], authority: [Bool],
        bodies: [ByteBuffer]
    ) throws {
        precondition(
            [seqs.count, hashes.count, authority.count, bodies.count].allSatisfy { $0 == authors.count },
            "the columns of an insert have one value per envelope")
        var bindings = PostgresBindings(capacity: 6)
        try bindings.append(Data(vaultID))
        bindings.append(authors)
        bindings.append(seqs)
        bindings.append(hashes)
        bindings.append(authority)
        bindings.append(bodies)
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { () }
}
