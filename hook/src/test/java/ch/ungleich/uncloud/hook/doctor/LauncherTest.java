package ch.ungleich.uncloud.hook.doctor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class LauncherTest {
  @Test
  void installLauncher() {
    Launcher l =
        Launcher.parse(
            "#!/bin/sh\n# uncloud-hook launcher\n"
                + "exec /usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xshare:auto -XX:SharedArchiveFile=/usr/lib/uncloud-hook/hook.jsa"
                + " -XX:TieredStopAtLevel=1 -jar /usr/lib/uncloud-hook/uncloud-hook.jar hook \"$@\"\n");
    assertEquals("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", l.java());
    assertEquals("/usr/lib/uncloud-hook/uncloud-hook.jar", l.jar());
    assertEquals(3, l.jvmArgs().size());
    assertNull(l.config());
    assertTrue(l.passesArgs());
    assertTrue(l.ours());
  }

  @Test
  void hookAddedBySetInsteadOfOnTheJavaLine() {
    String fn = "uncloud_java() {\n  exec /usr/lib/uncloud-hook/java -Xmx64m -jar /usr/lib/uncloud-hook/uncloud-hook.jar \"$@\"\n}\n"
        + "uncloud_java \"$@\"\n";
    Launcher l = Launcher.parse("#!/bin/sh\nset -- hook \"$@\"\n" + fn);
    assertEquals("/usr/lib/uncloud-hook/java", l.java());
    assertEquals(List.of("-Xmx64m"), l.jvmArgs());
    assertTrue(l.passesArgs());
    // without the set line, "$@" alone never says "hook": libvirt's arguments would be taken as a command
    assertFalse(Launcher.parse("#!/bin/sh\n" + fn).passesArgs());
  }

  @Test
  void continuedLinesAsInstallWritesThem() {
    Launcher l =
        Launcher.parse(
            "#!/bin/sh\n# uncloud-hook: managed hook launcher\nexec /usr/lib/uncloud-hook/java \\\n"
                + "  -Xshare:auto -XX:SharedArchiveFile=/var/lib/uncloud-hook/uncloud-hook.jsa \\\n"
                + "  -Xlog:disable -Xlog:all=warning:stderr \\\n"
                + "  -jar /usr/lib/uncloud-hook/uncloud-hook.jar hook \"$@\"\n");
    assertEquals("/usr/lib/uncloud-hook/java", l.java());
    assertEquals("/usr/lib/uncloud-hook/uncloud-hook.jar", l.jar());
    assertEquals(4, l.jvmArgs().size());
    assertTrue(l.passesArgs());
  }

  @Test
  void theLauncherInstallShips() throws java.io.IOException {
    Launcher l = Launcher.parse(java.nio.file.Files.readString(java.nio.file.Path.of("../install/files/libvirt-hook")));
    assertTrue(l.ours());
    assertTrue(l.passesArgs());
    assertEquals("/usr/lib/uncloud-hook/java", l.java());
    assertEquals("/usr/lib/uncloud-hook/uncloud-hook.jar", l.jar());
  }

  @Test
  void quotedPathsAndConfig() {
    Launcher l =
        Launcher.parse(
            "#!/bin/sh\nUNCLOUD_HOOK_CONFIG='/tmp/x y/uncloud-hook.conf'\nexport UNCLOUD_HOOK_CONFIG\n"
                + "exec '/opt/jdk 17/bin/java' -jar \"/tmp/a b/uncloud-hook.jar\" hook \"$@\"\n");
    assertEquals("/opt/jdk 17/bin/java", l.java());
    assertEquals("/tmp/a b/uncloud-hook.jar", l.jar());
    assertEquals("/tmp/x y/uncloud-hook.conf", l.config());
    assertTrue(l.passesArgs());
  }

  @Test
  void envAndExportForms() {
    Launcher a = Launcher.parse("#!/bin/sh\nexec env UNCLOUD_HOOK_CONFIG=/etc/u.conf /usr/bin/java -jar /x/uncloud-hook.jar hook \"$@\"\n");
    assertEquals("/etc/u.conf", a.config());
    assertEquals("/usr/bin/java", a.java());
    Launcher b = Launcher.parse("#!/bin/sh\nexport UNCLOUD_HOOK_CONFIG=/etc/v.conf # comment\njava -jar /x/uncloud-hook.jar hook $@\n");
    assertEquals("/etc/v.conf", b.config());
    assertEquals("java", b.java());
  }

  @Test
  void notOurs() {
    assertNull(Launcher.parse("#!/bin/sh\necho hello\n"));
    assertNull(Launcher.parse("\u007fELF binary"));
    assertNull(Launcher.parse(null));
    Launcher other = Launcher.parse("#!/bin/sh\nexec /usr/bin/java -jar /opt/other.jar \"$@\"\n");
    assertFalse(other.ours());
    assertFalse(other.passesArgs());
  }

  @Test
  void words() {
    assertEquals(List.of("a", "b c", "d\"e", "$@", "f"), Launcher.words("a 'b c' \"d\\\"e\" \"$@\" f # g"));
  }

  @Test
  void javaVersions() {
    assertEquals(17, Launcher.javaMajor("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment"));
    assertEquals(8, Launcher.javaMajor("java version \"1.8.0_392\""));
    assertEquals(21, Launcher.javaMajor("openjdk version \"21\" 2023-09-19"));
    assertEquals(-1, Launcher.javaMajor("bash: java: not found"));
  }
}
