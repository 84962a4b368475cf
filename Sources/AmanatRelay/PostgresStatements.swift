import AmanatCore
import Foundation
import NIOCore
import PostgresNIO

// The statements every request runs, prepared once per connection (postgres-nio sends `Parse` the first time a
// connection sees a statement's name, then only `Bind` and `Execute`). Parsing, analysing and planning a statement
// again at each request was half of the PostgreSQL server's CPU under `make load`. The relay asks for generic plans
// when it connects (`plan_cache_mode=force_generic_plan`, which applies to its other, unnamed statements too: all
// are lookups by key), so each statement here is planned once per connection. Each takes its lists as arrays, so
// one text serves any number of authors or envelopes.

/// The common table expression `heads (author, seq, hash)`: the head of each author of the vault `$1`, when
/// `condition` holds. A skip scan of the primary key backwards: each descent lands on the last envelope of the next
/// author down, its head, so the cost grows with the number of authors, not with the envelopes held.
func headsOfVault(when condition: String = "true") -> String {
    """
    heads (author, seq, hash) AS (
        (SELECT author, seq, hash FROM relay_envelope WHERE vault = $1 AND \(condition)
            ORDER BY author DESC, seq DESC LIMIT 1)
        UNION ALL
        SELECT x.author, x.seq, x.hash FROM heads h CROSS JOIN LATERAL (
            SELECT e.author, e.seq, e.hash FROM relay_envelope e WHERE e.vault = $1 AND e.author < h.author
            ORDER BY e.author DESC, e.seq DESC LIMIT 1) x
    )
    """
}

/// A prepared statement whose bindings are made when it is built. Each names itself: postgres-nio's default name is
/// `String(reflecting:)` of the type, computed again at every execution.
protocol RelayStatement: PostgresPreparedStatement {
    var bindings: PostgresBindings { get }
}

extension RelayStatement {
    func makeBindings() throws -> PostgresBindings { bindings }
}

/// The vault's relay key, whether the nonce was recorded now (only for that key: 1, else 0), the number of
/// authority envelopes held and, when $5 is true and the key is the vault's, whether it holds a purged form (1, else
/// 0: one entry of the partial index `relay_envelope_without_content` looked up) (kind 0; no such row when the vault
/// is not held); then, when $5 is
/// true and the key is the vault's, each author's head (kind 1): `GET …/vector` is answered by the statement that
/// admits it, and needs no other unless the vault holds a purged form (http-api.md §11).
struct AdmitStatement: RelayStatement {
    static let name = "amanat_admit"
    static let sql = """
        WITH RECURSIVE v AS (SELECT id, relay_key FROM relay_vault WHERE id = $1),
        n AS (
            INSERT INTO relay_nonce (vault, nonce, expires) SELECT id, $2, $3 FROM v WHERE relay_key = $4
            ON CONFLICT (vault, nonce) DO NOTHING RETURNING 1
        ), \(headsOfVault(when: "$5 AND EXISTS (SELECT 1 FROM v WHERE relay_key = $4)"))
        SELECT 0::int4 AS kind, v.relay_key, (SELECT count(*) FROM n) AS fresh,
            (SELECT count(*) FROM relay_envelope WHERE vault = $1 AND authority) AS authorities,
            (SELECT count(*) FROM (SELECT 1 FROM relay_envelope WHERE vault = $1 AND $5 AND v.relay_key = $4
                AND \(PostgresRelayStorage.purgedFormCondition) LIMIT 1) x) AS purged_forms,
            NULL::bytea AS author, NULL::int8 AS seq, NULL::bytea AS hash
        FROM v
        UNION ALL
        SELECT 1, NULL, NULL, NULL, NULL, author, seq, hash FROM heads
        """
    typealias Row = (Int32, Data?, Int64?, Int64?, Int64?, Data?, Int64?, Data?)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], nonce: [UInt8], expires: Int64, key: [UInt8], withVector: Bool) throws {
        var bindings = PostgresBindings(capacity: 5)
        try bindings.append(Data(vaultID))
        try bindings.append(Data(nonce))
        bindings.append(expires)
        try bindings.append(Data(key))
        bindings.append(withVector)
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Each author's head (seq and hash) and, for the authors listed in $2 with their seqs in $3, the hash held at that
/// seq (null when none). One row with nulls when the vault holds no envelope; no row when the vault is not held.
///
/// The heads come from ``headsOfVault(when:)``.
struct HeadsStatement: RelayStatement {
    static let name = "amanat_heads"
    // The replica's vector is joined (a hash join), never searched once per author: a hostile vector may name a
    // hundred thousand devices.
    static let sql = """
        WITH RECURSIVE \(headsOfVault()), theirs (author, seq) AS (SELECT * FROM unnest($2::bytea[], $3::int8[])
        ), held AS (
            SELECT h.author, h.seq, h.hash, (SELECT e.hash FROM relay_envelope e
                WHERE e.vault = $1 AND e.author = h.author AND e.seq = t.seq) AS held
            FROM heads h LEFT JOIN theirs t ON t.author = h.author
        )
        SELECT x.author, x.seq, x.hash, x.held FROM relay_vault v LEFT JOIN held x ON true WHERE v.id = $1
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

/// For each (author, after, take) in order, up to `take` of the author's envelopes after `after` (seq and body), in
/// seq order, each with its author's 1-based position in the lists; of each author only the bodies that can fit the
/// byte budget $5 (``withinBudget(author:after:take:budget:)``).
struct BodiesStatement: RelayStatement {
    static let name = "amanat_bodies"
    static let sql = """
        SELECT w.ord, e.seq, e.body
        FROM unnest($2::bytea[], $3::int8[], $4::int8[]) WITH ORDINALITY AS w (author, after, take, ord)
        CROSS JOIN LATERAL (\(withinBudget(author: "w.author", after: "w.after", take: "w.take", budget: "$5"))) e
        ORDER BY w.ord, e.seq
        """
    typealias Row = (Int64, Int64, Data)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], wants: [(author: DeviceID, after: UInt64, take: Int)], byteBudget: Int) throws {
        var bindings = PostgresBindings(capacity: 5)
        try bindings.append(Data(vaultID))
        bindings.append(wants.map { ByteBuffer(bytes: $0.author.bytes) })
        bindings.append(wants.map { Int64(clamping: $0.after) })
        bindings.append(wants.map { Int64($0.take) })
        bindings.append(Int64(byteBudget))
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

/// What a replica lacks, in one statement and so in one snapshot: first one row (kind -1) when the vault is held;
/// then a row (kind 0) per author with the head's seq and whether the replica's head of that author diverged (a
/// hash at a seq the relay holds that is not the relay's); then (kind 1) the bodies of each author the replica lags
/// behind, in author then seq order, each author's share being what the limit $5 leaves after the authors before it.
/// The replica's vector is $2 (authors), $3 (seqs), $4 (hashes).
///
/// The reader checks that the rows come in that order (PostgreSQL's plan gives it; SQL does not promise it without
/// an `ORDER BY`, which would sort every body) and reads the answer again in two statements if they do not.
struct MissingStatement: RelayStatement {
    static let name = "amanat_missing"
    static let sql = """
        WITH RECURSIVE \(headsOfVault()), theirs (author, seq, hash) AS (SELECT * FROM unnest($2::bytea[], $3::int8[], $4::bytea[])
        ), status AS (
            SELECT h.author, h.seq AS head, coalesce(t.seq, 0) AS after,
                CASE
                    WHEN coalesce(t.seq, 0) >= h.seq THEN coalesce(t.seq, 0) = h.seq AND t.hash <> h.hash
                    WHEN coalesce(t.seq, 0) > 0 THEN (SELECT e.hash FROM relay_envelope e
                        WHERE e.vault = $1 AND e.author = h.author AND e.seq = t.seq) IS DISTINCT FROM t.hash
                    ELSE false
                END AS diverged
            FROM heads h LEFT JOIN theirs t ON t.author = h.author
        ), lagging AS (
            SELECT author, after, head - after AS wanted,
                coalesce(sum(head - after) OVER (ORDER BY author ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                    AS before
            FROM status WHERE NOT diverged AND after < head
        )
        SELECT -1::int4 AS kind, NULL::bytea AS author, 0::int8 AS seq, false AS diverged, NULL::bytea AS body
            FROM relay_vault WHERE id = $1
        UNION ALL
        SELECT 0, author, head, diverged, NULL FROM status
        UNION ALL
        SELECT 1, l.author, e.seq, false, e.body FROM lagging l CROSS JOIN LATERAL (\(withinBudget(
            author: "l.author", after: "l.after", take: "greatest(0, least(l.wanted, $5 - l.before))", budget: "$6"))) e
        """
    typealias Row = (Int32, Data?, Int64, Bool, Data?)
    let bindings: PostgresBindings

    init(vaultID: [UInt8], theirs: [(DeviceID, ChainHead)], limit: Int, byteBudget: Int) throws {
        var bindings = PostgresBindings(capacity: 6)
        try bindings.append(Data(vaultID))
        bindings.append(theirs.map { ByteBuffer(bytes: $0.0.bytes) })
        bindings.append(theirs.map { Int64(clamping: $0.1.seq) })
        bindings.append(theirs.map { ByteBuffer(bytes: $0.1.hash) })
        bindings.append(Int64(limit))
        bindings.append(Int64(byteBudget))
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The seqs of `author` (in vault $1) after `after`, at most `take` of them, in seq order, with their bodies, of
/// those that can still fit a byte budget of `budget`: the first, and each whose body ends within `budget` when added
/// to the author's bodies before it here. A body is read only for these seqs, one index lookup each: the sizes come
/// from the rows (`octet_length` of a stored body reads its length, not the body), so an answer whose budget is
/// spent after a few large envelopes does not read, and send the relay, the rest of the limit's bodies. The budget
/// applies per author: authors after the one that spent it are still read up to it (the reader then drops them).
///
/// Every body the reader takes is among them: it takes an author's bodies in order until the first that does not
/// fit, counting what earlier authors took too, so when it takes a body other than the first it took all of the
/// author's bodies before it, and they fit the budget with it.
func withinBudget(author: String, after: String, take: String, budget: String) -> String {
    """
    SELECT seq, (SELECT body FROM relay_envelope b WHERE b.vault = $1 AND b.author = \(author) AND b.seq = running.seq)
        AS body
    FROM (
        SELECT seq, size, sum(size) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) - size AS before FROM (
            SELECT seq, octet_length(body) AS size FROM relay_envelope
            WHERE vault = $1 AND author = \(author) AND seq > \(after) ORDER BY seq LIMIT (\(take))::int8) sized
        ) running
    WHERE before = 0 OR before + size <= \(budget) ORDER BY seq
    """
}

/// Up to $4 envelopes of author $2 after seq $3, in seq order, as many as can fit the byte budget $5 (the first
/// always): what `GET …/envelopes` sends (``withinBudget(author:after:take:budget:)``).
struct EnvelopesStatement: RelayStatement {
    static let name = "amanat_envelopes"
    static let sql = """
        SELECT e.body FROM (\(withinBudget(author: "$2", after: "$3", take: "$4", budget: "$5"))) e ORDER BY e.seq
        """
    typealias Row = Data
    let bindings: PostgresBindings

    init(vaultID: [UInt8], author: DeviceID, after seq: UInt64, limit: Int, byteBudget: Int) throws {
        var bindings = PostgresBindings(capacity: 5)
        try bindings.append(Data(vaultID))
        try bindings.append(Data(author.bytes))
        bindings.append(Int64(clamping: seq))
        bindings.append(Int64(limit))
        bindings.append(Int64(byteBudget))
        self.bindings = bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
