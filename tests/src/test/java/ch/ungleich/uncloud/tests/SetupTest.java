package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Proc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14: tests/setup/check-host, which `mvn -B verify` runs first. A fresh machine cannot be had
 * here (everything is installed), so the script runs with a stand-in dpkg-query that answers "not
 * installed" for one package, with and without a stand-in apt-get on PATH, as root and as nobody; and
 * once with the real dpkg-query, which must find everything (check-host already ran in this build) and
 * call no apt-get.
 */
class SetupTest {
  private static final Path ROOT = Path.of(System.getProperty("uncloud.root", "..")).toAbsolutePath().normalize();
  private static final String PKG = "python3-prometheus-client";
  @TempDir Path tmp;
  Path script;

  @BeforeEach
  void copyScript() throws IOException {
    // a copy nobody can read too (the clone may sit below /root)
    Path setup = Files.createDirectories(tmp.resolve("setup"));
    Files.copy(ROOT.resolve("tests/setup/check-host"), setup.resolve("check-host"));
    Files.copy(ROOT.resolve("tests/setup/packages"), setup.resolve("packages"));
    for (Path p : List.of(tmp, setup, setup.resolve("check-host"), setup.resolve("packages"))) {
      Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
    script = setup.resolve("check-host");
  }

  /** A PATH directory with the tools the script uses, a dpkg-query missing {@code missing}, and apt-get if asked. */
  Path bin(String missing, boolean aptGet) throws IOException {
    Path bin = Files.createDirectories(tmp.resolve("bin-" + missing + "-" + aptGet));
    for (String tool : List.of("sh", "sed", "tr", "grep", "id", "dirname", "cat")) {
      Files.createSymbolicLink(bin.resolve(tool), Path.of(Proc.run("sh", "-c", "command -v " + tool).ok().out().strip()));
    }
    // dpkg-query -W -f='${Status}' PKG
    write(bin.resolve("dpkg-query"), "#!/bin/sh\n[ \"$3\" = '" + missing + "' ] && exit 1\nprintf 'install ok installed'\n");
    if (aptGet) {
      write(bin.resolve("apt-get"), "#!/bin/sh\necho \"$*\" >> " + tmp.resolve("apt.log") + "\n");
    }
    Files.setPosixFilePermissions(bin, PosixFilePermissions.fromString("rwxr-xr-x"));
    return bin;
  }

  static void write(Path p, String text) throws IOException {
    Files.writeString(p, text);
    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
  }

  Proc.Result check(Path bin, boolean asNobody) {
    List<String> cmd = new ArrayList<>(List.of("env", "-i", "PATH=" + bin));
    if (asNobody) {
      cmd.addAll(0, List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"));
    }
    cmd.addAll(List.of("/bin/sh", script.toString()));
    return Proc.run(Duration.ofSeconds(60), null, cmd);
  }

  List<String> aptCalls() throws IOException {
    Path log = tmp.resolve("apt.log");
    return Files.exists(log) ? Files.readAllLines(log) : List.of();
  }

  static String oneLine(Proc.Result r) {
    assertEquals(1, r.err().lines().count(), "one line: " + r.describe());
    assertEquals("", r.out(), "nothing on stdout");
    return r.err().strip();
  }

  @Test
  void everythingThereMeansNoAptAndNoOutput() throws IOException {
    Proc.Result r = check(bin("none", true), false);
    assertEquals(0, r.exit(), r.describe());
    assertEquals("", r.err() + r.out());
    assertEquals(List.of(), aptCalls());
  }

  @Test
  void missingPackageIsInstalledAndSaid() throws IOException {
    Proc.Result r = check(bin(PKG, true), false);
    assertEquals(0, r.exit(), r.describe());
    assertEquals("uncloud-hook tests: installing " + PKG + " (apt-get install --no-install-recommends)", oneLine(r));
    assertEquals(List.of("install -y -q --no-install-recommends " + PKG), aptCalls());
  }

  @Test
  void missingPackageWithoutAptStopsWithOneLine() throws IOException {
    Proc.Result r = check(bin(PKG, false), false);
    assertEquals(1, r.exit(), r.describe());
    String line = oneLine(r);
    assertTrue(line.startsWith("uncloud-hook tests: missing " + PKG + " and no apt-get"), line);
    assertTrue(line.endsWith("apt-get install -y --no-install-recommends " + PKG), line);
  }

  @Test
  void notRootStopsWithOneLine() throws IOException {
    Proc.Result r = check(bin("none", true), true);
    assertEquals(1, r.exit(), r.describe());
    assertTrue(oneLine(r).startsWith("uncloud-hook tests: not root: "), r.err());
    Proc.Result m = check(bin(PKG, true), true);
    assertEquals(1, m.exit(), m.describe());
    assertTrue(oneLine(m).contains("missing " + PKG + ": run as root (sudo mvn -B verify installs them, or first: sudo"
        + " apt-get install -y --no-install-recommends " + PKG + ")"), m.err());
    assertEquals(List.of(), aptCalls(), "apt-get never runs as non-root");
  }

  /** This machine: check-host ran in this build's validate phase, so the real dpkg-query finds everything. */
  @Test
  void thisMachineHasEverythingSoNoAptCall() throws IOException {
    Path fake = Files.createDirectories(tmp.resolve("fake-apt"));
    write(fake.resolve("apt-get"), "#!/bin/sh\necho \"$*\" >> " + tmp.resolve("apt.log") + "\n");
    Proc.Result r = Proc.run(Duration.ofSeconds(60), null,
        List.of("env", "PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "/bin/sh", script.toString()));
    assertEquals(0, r.exit(), r.describe());
    assertEquals("", r.err());
    assertEquals(List.of(), aptCalls());
    assertFalse(Files.readString(ROOT.resolve("tests/setup/packages")).contains("\t"), "packages: spaces only");
  }
}
