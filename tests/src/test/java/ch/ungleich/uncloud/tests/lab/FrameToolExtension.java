package ch.ungleich.uncloud.tests.lab;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * One {@link FrameTool} for a test class: started before its first test, closed after its last,
 * also when a test fails. Use as {@code @RegisterExtension static final FrameToolExtension FRAMES = new
 * FrameToolExtension();} and {@code FRAMES.tool()}.
 */
public final class FrameToolExtension implements BeforeAllCallback, AfterAllCallback {
  private FrameTool tool;

  @Override
  public void beforeAll(ExtensionContext context) {
    tool = FrameTool.start();
  }

  @Override
  public void afterAll(ExtensionContext context) {
    if (tool != null) {
      tool.close();
      tool = null;
    }
  }

  /** The running tool; only between the class's first and last test. */
  public FrameTool tool() {
    if (tool == null) {
      throw new IllegalStateException("FrameTool not started: register FrameToolExtension as a static field");
    }
    return tool;
  }
}
