/* The seed guide's example payload: a static binary that reads its input from the volume at
 * /data and writes its result there. Build it on the ground:
 *
 *     gcc -static -O2 -o payload/hello-space hello-space.c
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int main(void) {
    char message[4096] = "(no message)";
    FILE *in = fopen("/data/in/message.txt", "r");
    if (in) {
        size_t n = fread(message, 1, sizeof message - 1, in);
        message[n] = '\0';
        message[strcspn(message, "\n")] = '\0';
        fclose(in);
    }
    if (mkdir("/data/out", 0755) != 0 && errno != EEXIST) {
        perror("mkdir /data/out");
        return 1;
    }
    FILE *out = fopen("/data/out/hello.txt", "w");
    if (!out) {
        perror("/data/out/hello.txt");
        return 1;
    }
    fprintf(out, "Hello from orbit! The ground said: %s\n", message);
    fclose(out);
    printf("wrote /data/out/hello.txt\n");
    return 0;
}
