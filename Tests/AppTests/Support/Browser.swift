import Foundation
import Testing

/// Runs a browser scenario from `BrowserTests/` (Python + Selenium driving headless Chromium)
/// against a live server, and reports its output as the test's issues.
enum Browser {
    /// Why the browser tests cannot run here, or nil when they can.
    static let unavailableReason: String? = {
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            return "Chromium is not installed (\(chromium)); browser tests are skipped. Install it: apt-get install chromium chromium-driver; python3 -m pip install selenium"
        }
        guard Subprocess.succeeds(["python3", "-c", "import selenium"]) else {
            return "Python's selenium package is missing; browser tests are skipped. Install it: python3 -m pip install selenium"
        }
        guard Subprocess.succeeds(["python3", "-c", "import axe_selenium_python"]) else {
            return "Python's axe-selenium-python package is missing; browser tests are skipped. Install it: python3 -m pip install axe-selenium-python"
        }
        return nil
    }()

    static let chromium = ProcessInfo.processInfo.environment["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
    /// Set by CI, where a skipped browser test is a failure.
    static let required = ProcessInfo.processInfo.environment["REQUIRE_BROWSER_TESTS"] == "1"
    static var available: Bool { unavailableReason == nil }

    /// Where screenshots go (`artifacts/browser/`, ignored by git).
    static var artifacts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("artifacts/browser")
    }

    static var scripts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("BrowserTests")
    }

    /// Runs `BrowserTests/<script>` with `arguments`; records its output as an issue when it fails.
    static func scenario(_ script: String, _ arguments: [String], timeout: Duration = .seconds(180),
                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let command = ["python3", scripts.appendingPathComponent(script).path, "--chromium", chromium,
                       "--artifacts", artifacts.path] + arguments
        let result = try await Subprocess.run(command, timeout: timeout)
        if result.status != 0 {
            Issue.record("\(script) failed (exit \(result.status)):\n\(result.output)", sourceLocation: sourceLocation)
        }
    }
}
