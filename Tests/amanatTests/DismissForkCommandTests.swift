import Foundation
import Testing

/// A coordinator reviews a fork and dismisses it from the command line; `verify` passes again.
@Suite struct DismissForkCommandTests {
    @Test func aClonedLaptopsForkIsReportedThenDismissedByACoordinatorOnly() throws {
        let scratch = try Scratch()
        let coordinator = scratch.runner("coordinator")
        try coordinator.initialize(name: "coordinator")
        let invitation = scratch.path("invite.amanat").path
        let code = try coordinator.ok(["invite", "--out", invitation])
        let member = scratch.runner("member")
        _ = try member.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "field"])
        let stick = scratch.path("stick.sync").path
        for r in [member, coordinator] { _ = try r.ok(["sync", "--create", stick]) }
        // The member's disk is cloned; both copies write their next change under the same device key.
        let clone = scratch.runner("clone")
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-a", member.vault.path, clone.vault.path]
        try copy.run()
        copy.waitUntilExit()
        _ = try member.ok(["add", "statement", "--title", "from the original"])
        _ = try clone.ok(["add", "statement", "--title", "from the clone"])
        _ = try member.ok(["sync", "--create", stick])
        let seen = try coordinator.run(["sync", "--create", scratch.path("clone.sync").path])
        #expect(seen.status == 0)
        _ = try clone.ok(["sync", "--create", scratch.path("clone.sync").path])
        _ = try coordinator.ok(["sync", "--create", stick])
        let forked = try coordinator.run(["sync", "--create", scratch.path("clone.sync").path])
        #expect(forked.stderr.contains("signed two different changes"), "\(forked.stderr)")
        let failing = try coordinator.run(["verify"])
        #expect(failing.status == 65 && failing.stderr.contains("forked"), "\(failing.stderr)")

        let refused = try member.run(["dismiss-fork", "field"])
        #expect(refused.status == 77 && refused.stderr.contains("Only a coordinator"), "\(refused.stderr)")
        let dismissed = try coordinator.run(["dismiss-fork", "field"])
        #expect(dismissed.status == 0, "\(dismissed.stderr)")
        #expect(try coordinator.run(["verify"]).status == 0)
        #expect(!(try coordinator.ok(["status"])).contains("FORK"))
        // The dismissal is signed and travels: the member's replica sees the fork dismissed too.
        _ = try coordinator.ok(["sync", "--create", stick])
        _ = try member.ok(["sync", "--create", stick])
        #expect(try member.run(["verify"]).status == 0)
    }
}

/// `identity` and `members` show the device's own member key, never its signing key converted.
@Suite struct IdentityCommandTests {
    @Test func theAgeRecipientIsTheMemberKeyPublishedInTheMembershipLog() throws {
        let scratch = try Scratch()
        let cli = scratch.runner("v")
        try cli.initialize(name: "field laptop")
        let out = try cli.ok(["identity"])
        let lines = out.split(separator: "\n").map(String.init)
        let device = try #require(lines.first { $0.hasPrefix("device: ") }).dropFirst(8)
        let age = try #require(lines.first { $0.hasPrefix("age:    ") }).dropFirst(8)
        #expect(lines.contains("role:   coordinator"))
        #expect(age.hasPrefix("age1"))
        let members = try JSONSerialization.jsonObject(with: Data(try cli.ok(["members", "--json"]).utf8))
        let me = try #require((members as? [[String: Any]])?.first { $0["device"] as? String == String(device) })
        #expect(me["age_recipient"] as? String == String(age))
        #expect(me["this_device"] as? Bool == true && me["name"] as? String == "field laptop")
    }
}
