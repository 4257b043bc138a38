#version 330 core
// The built-in body's vertex shader (pyrender loads it by this name from SceneRenderer's shader
// folder): world position and normal for the fragment shader; vertex colour passed through.
layout(location = 0) in vec3 position;
layout(location = NORMAL_LOC) in vec3 normal;
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;
out vec3 frag_normal;
out vec4 frag_color;

void main()
{
    mat4 model = M * inst_m;
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
    frag_normal = mat3(model) * normal;  // rigid transforms only: no inverse-transpose needed
#ifdef COLOR_0_LOC
    frag_color = color_0;
#else
    frag_color = vec4(1.0);
#endif
}
